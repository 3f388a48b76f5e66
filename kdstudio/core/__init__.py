"""Everything that runs without Qt: config, registries, data, losses, engine, store."""
