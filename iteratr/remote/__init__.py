"""One session, many machines: a session carried forward through a git remote, one holder at a time.

The remote is the distributed engine. Its branch ``iteratr/S`` carries the session's state (the event log is
committed on it), and its ref ``refs/iteratr/leases/S`` says who holds the session: it is only ever changed by
an atomic compare-and-swap push (``--force-with-lease=<ref>:<expected>``, with ``--atomic`` when the branch
moves with it), so of two machines that race for it exactly one wins.

- ``refs``: the network side (``ls-remote``, ``fetch``, ``push``) and the refs' names, through ``gitrepo``;
- ``lease``: the lease record (host, pid, start, expiry) and taking, renewing and releasing it;
- ``sync``: what a build does with a remote: probe, lease, fetch, resume or refuse, push each commit;
- ``messages``: ``iteratr say`` to a session whose only copy is remote (a message commit on the branch),
  and taking such messages into the log exactly once.

Nothing here imports click, prints or exits: the build and the commands report what it raises and returns.
"""
