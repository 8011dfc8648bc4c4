from tinyalign.app import main

main()
