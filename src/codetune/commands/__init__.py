"""One module per subcommand; see codetune.cli for the protocol each follows."""
