"""What can go wrong while a job moves, and what the pipeline does about it.

::

    TranscribeError                 base; never shown raw to a user
    ├── TemporaryError              retry the same step later, with backoff
    │   ├── RateLimited             the other side asked us to slow down (honours Retry-After)
    │   └── NotReadyYet             the provider is still working; ask again later, no backoff
    │       └── WorkspaceGone       the workspace has no installation or usable token any more:
    │                               its work waits quietly, no Slack call is made for it
    ├── AccountProblem              the provider account takes no new work until an admin acts
    │                               (balance or budget used up): the work waits, one call a minute
    │                               checks whether it works again, the operator is told loudly
    └── PermanentError              fail the job; ``user_message`` goes into the thread reply
        ├── ProviderAuthError       the operator's credentials are wrong; also logged loudly
        └── WorkLost                the provider lost work it had accepted: submit it again,
                                    a bounded number of times, then fail

Every error carries ``user_message``: plain words saying what failed and what to try, safe to post
in Slack (no URLs with tokens, no stack traces). ``detail`` is for the log only.
"""

from __future__ import annotations

from bot.messages import failures


class TranscribeError(Exception):
    user_message = failures.TRANSCRIBE_FAILED

    def __init__(self, detail: str, *, user_message: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if user_message is not None:
            self.user_message = user_message


class TemporaryError(TranscribeError):
    """Worth retrying: timeouts, dropped connections, 5xx, rate limits."""

    user_message = failures.KEPT_FAILING

    def __init__(
        self, detail: str, *, retry_after: float | None = None, user_message: str | None = None
    ) -> None:
        super().__init__(detail, user_message=user_message)
        self.retry_after = retry_after


class RateLimited(TemporaryError):
    pass


class NotReadyYet(TemporaryError):
    """Not a failure: the step cannot happen yet (for example an upload still in progress)."""


class WorkspaceGone(NotReadyYet):
    """The workspace's work cannot reach Slack: the app is not installed there (any more), or
    its bot token was revoked, or expired with nothing to refresh it. No call is made for it
    and nothing is posted; its work waits, without counting attempts, until the workspace is
    installed again, its work is removed, or the age limit ends it."""

    #: How long the work of such a workspace waits before it is looked at again.
    WAIT_SECONDS = 600.0

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=self.WAIT_SECONDS)


class AccountProblem(TranscribeError):
    """The provider refuses new work for the whole account, whatever the file: its balance or a
    spending limit is used up. Retrying soon cannot help and failing the file would blame it, so
    the work waits for an admin, and goes on by itself once the account works again."""

    user_message = failures.ACCOUNT_CANNOT_TAKE_WORK

    def __init__(
        self,
        detail: str,
        *,
        provider: str,
        reason: str,
        user_message: str | None = None,
    ) -> None:
        super().__init__(detail, user_message=user_message)
        self.provider = provider
        #: The provider's word for it, from a small fixed set: a metric label.
        self.reason = reason


class PermanentError(TranscribeError):
    """Retrying cannot help: bad input, a rejected file, a missing permission."""


class ProviderAuthError(PermanentError):
    user_message = failures.CREDENTIALS_REJECTED


class WorkLost(PermanentError):
    """The provider no longer knows work it accepted (it answers that a batch is not found).

    Not the file's fault: the pipeline submits the job again from what is still there (the file
    the provider stored, the link), and fails it with ``user_message`` only after a few tries.
    """
