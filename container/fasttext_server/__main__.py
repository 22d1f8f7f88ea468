"""``python -m fasttext_server``: the server, as the image's ``serve`` and the local mode start it."""

import sys

from fasttext_server.server import main

sys.exit(main(sys.argv[1:]))
