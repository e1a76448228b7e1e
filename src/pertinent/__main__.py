from pertinent.cli import main

main()
