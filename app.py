"""python app.py --adapter NAME=RUN_DIR ... — the side-by-side arena; see `python app.py --help`."""

from tinyalign.app import main

if __name__ == "__main__":
    main()
