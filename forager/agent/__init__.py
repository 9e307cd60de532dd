"""The agent loop: tool-call formats, prompts, policies (LLM or scripted oracle) and the episode loop."""
