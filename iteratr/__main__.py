from iteratr.cli import main

main()
