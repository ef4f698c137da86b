"""ConfigurableResource classes, one per external system."""
