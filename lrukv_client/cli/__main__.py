"""``python -m lrukv_client.cli`` runs the ``lrukv`` command."""

from lrukv_client.cli.app import main

main()
