# fanbpf's own tests use its pytest plugin (opt-in, as any project would).
pytest_plugins = ["fanbpf.testing"]
