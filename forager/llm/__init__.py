"""The model side: an OpenAI-compatible client (vLLM first) that captures what each call really was."""
