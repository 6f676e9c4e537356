from detic_cli.cli.app import main

main()
