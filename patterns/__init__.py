"""Built-in pattern files, shipped inside the package as simfarm.builtin_patterns."""
