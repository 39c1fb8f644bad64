"""The `repro` command line: the one layer above papers/, harness/ and repro/ (it imports all three;
none of them imports it)."""
