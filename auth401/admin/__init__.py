"""auth401 in the Django admin.

- ``events``: the AuthEvent admin (append-only audit trail) and its CSV export (``export``)
- ``status``: the AccountStatus admin, with lock/suspend/unlock/reinstate buttons and actions
- ``actions``: those changes, each asking why first, through ``auth401.accounts``
- ``filters``: the changelist filters, from the catalogue
- ``dashboard``: the failures dashboard
- ``mixins``: the account actions on the project's own user admin
"""

from .events import AuthEventAdmin, CappedCountPaginator
from .mixins import AccountActionsMixin, extend_user_admin
from .status import AccountStatusAdmin

__all__ = [
    "AccountActionsMixin",
    "AccountStatusAdmin",
    "AuthEventAdmin",
    "CappedCountPaginator",
    "extend_user_admin",
]
