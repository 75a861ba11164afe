from iteratr.main import main

main()
