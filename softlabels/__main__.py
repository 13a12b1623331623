"""``python -m softlabels`` (also what ``torchrun -m softlabels`` runs)."""

from softlabels.cli.app import main

if __name__ == "__main__":
    main()
