"""Import names that differ from the PyPI distribution that provides them."""

from __future__ import annotations

IMPORT_TO_DISTRIBUTION = {
    "Bio": "biopython",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "MySQLdb": "mysqlclient",
    "OpenGL": "PyOpenGL",
    "OpenSSL": "pyOpenSSL",
    "PIL": "Pillow",
    "Xlib": "python-xlib",
    "absl": "absl-py",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cairo": "pycairo",
    "corsheaders": "django-cors-headers",
    "cv2": "opencv-python-headless",
    "dateutil": "python-dateutil",
    "dbus": "dbus-python",
    "debug_toolbar": "django-debug-toolbar",
    "discord": "discord.py",
    "django_filters": "django-filter",
    "dns": "dnspython",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "engineio": "python-engineio",
    "ffmpeg": "ffmpeg-python",
    "fitz": "PyMuPDF",
    "gi": "PyGObject",
    "git": "GitPython",
    "github": "PyGithub",
    "google.api_core": "google-api-core",
    "google.auth": "google-auth",
    "google.oauth2": "google-auth",
    "google.protobuf": "protobuf",
    "googleapiclient": "google-api-python-client",
    "grpc": "grpcio",
    "hamcrest": "PyHamcrest",
    "imblearn": "imbalanced-learn",
    "jose": "python-jose",
    "jwt": "PyJWT",
    "kafka": "kafka-python",
    "ldap": "python-ldap",
    "libfuturize": "future",
    "magic": "python-magic",
    "markdown_it": "markdown-it-py",
    "memcache": "python-memcached",
    "mpl_toolkits": "matplotlib",
    "multipart": "python-multipart",
    "nacl": "PyNaCl",
    "past": "future",
    "pkg_resources": "setuptools",
    "pptx": "python-pptx",
    "psycopg2": "psycopg2-binary",
    "pylab": "matplotlib",
    "pythonjsonlogger": "python-json-logger",
    "pyximport": "Cython",
    "rest_framework": "djangorestframework",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "slugify": "python-slugify",
    "snappy": "python-snappy",
    "socketio": "python-socketio",
    "socks": "PySocks",
    "speech_recognition": "SpeechRecognition",
    "telegram": "python-telegram-bot",
    "umap": "umap-learn",
    "usb": "pyusb",
    "websocket": "websocket-client",
    "xdist": "pytest-xdist",
    "yaml": "PyYAML",
    "zmq": "pyzmq",
}

# Namespace packages whose distributions are named after the sub-package: google.cloud.storage -> google-cloud-storage.
_NAMESPACES = {
    "google.cloud": ("google-cloud-", 3),
    "backports": ("backports.", 2),
    "jaraco": ("jaraco.", 2),
    "zope": ("zope.", 2),
    "ruamel": ("ruamel.", 2),
    "sphinxcontrib": ("sphinxcontrib-", 2),
}

# Never installable from PyPI on Linux: Python 2 and removed stdlib modules, Windows-only modules, pytest itself.
NOT_DISTRIBUTIONS = {
    "__builtin__", "BaseHTTPServer", "ConfigParser", "Cookie", "HTMLParser", "Queue", "SimpleHTTPServer",
    "SocketServer", "StringIO", "Tkinter", "UserDict", "asynchat", "asyncore", "cPickle", "cStringIO",
    "commands", "cookielib", "copy_reg", "distutils", "exceptions", "htmlentitydefs", "httplib", "imp",
    "md5", "new", "sets", "sha", "smtpd", "thread", "urllib2", "urlparse", "xmlrpclib",
    "_winreg", "pythoncom", "pywintypes", "win32api", "win32com", "win32con", "win32file",
    "py", "pytest", "_pytest",
}  # fmt: skip


def distribution_for(module: str) -> str | None:
    """The distribution to pip-install for a dotted import; None when it cannot be told."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        if (name := IMPORT_TO_DISTRIBUTION.get(".".join(parts[:length]))) is not None:
            return name
    for prefix, (dist_prefix, depth) in _NAMESPACES.items():
        if module == prefix or module.startswith(prefix + "."):
            if len(parts) < depth:
                return None  # the bare namespace names no distribution
            return dist_prefix + parts[depth - 1].replace("_", "-")
    top = parts[0]
    # google.* and azure.* distributions follow no single naming rule: better nothing than a wrong guess.
    if top in ("google", "azure") or top in NOT_DISTRIBUTIONS:
        return None
    return top
