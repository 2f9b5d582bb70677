CORE_CONFIG_PLUGINS: tuple[object, ...] = ()
