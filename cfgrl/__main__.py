from cfgrl.cli import main

main()
