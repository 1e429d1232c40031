"""The context to send to a chat model: the summary and relevant archived messages as a
leading system message, then the newest window messages that fit a token budget, in
OpenAI's chat format (``assembly``: pure; ``service``: reads the session and searches)."""
