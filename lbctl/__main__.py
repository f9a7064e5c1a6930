from lbctl.cli import main

main()
