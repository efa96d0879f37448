"""Model sources, the family registry, chat templates, memory estimates and the template/stop check."""
