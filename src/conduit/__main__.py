from conduit.cli.main import main

main()
