"""``python -m flowmix``: the ``flowmix`` command line (:mod:`flowmix.cli`)."""

from flowmix.cli import main

if __name__ == "__main__":  # pragma: no cover - run as a program, not imported
    main()
