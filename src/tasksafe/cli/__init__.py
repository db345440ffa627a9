"""The `tasksafe` command line: one thin subcommand per stage."""
