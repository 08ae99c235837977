from footprint.early import main

main()
