from faissctl.cli import main

main()
