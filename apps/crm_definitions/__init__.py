"""The CRM definition package. This file only tells Python where the definitions are, so
that an installed Heddle finds them; the package itself is YAML."""

from pathlib import Path

PATH = Path(__file__).resolve().parent
