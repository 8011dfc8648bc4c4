from tinyalign.loop import main

main()
