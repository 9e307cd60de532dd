# forager env layer: ${repo_name} at ${commit}, dependencies installed, test suite runnable.
# Rendered by forager/build/render.py from an EnvSpec; the tag is the content hash of spec + commit.
FROM ${base_tag}
${ca_lines}
${env_lines}
# 1. Dependencies known without the source: one layer shared by commits whose requirements are equal.
COPY forager-requirements.txt /usr/local/share/forager/requirements.txt
# pip first: the base's pip may predate what projects need (PEP 660 editables, dependency groups); uv when
# the spec resolves as of a day (its --exclude-newer). The installers themselves are today's releases.
RUN : forager-install && timeout ${install_timeout} pip install -q --upgrade ${installers} \
    && timeout ${install_timeout} ${installer} -r /usr/local/share/forager/requirements.txt
# 2. The repository at its commit, its history sanitised before it was copied.
COPY repo/ ${repo_path}/
WORKDIR ${repo_path}
${install_lines}
# Files the install wrote (egg-info, build/) are hidden from git status so an agent's diff stays clean.
RUN git ls-files --others --exclude-standard --directory >> .git/info/exclude \
    && { git diff --quiet || echo "forager: warning: the install modified tracked files: $$(git diff --name-only)"; }
# Labels last: a label naming the commit before the dependency layer would make every commit rebuild it.
LABEL forager.repo=${repo_url} forager.commit="${commit}" forager.spec-hash="${spec_hash}" \
      forager.ca-bundle-sha256="${ca_bundle_sha256}" forager.version="${forager_version}"
