-- Several instances sharing one store: each live instance renews its row
-- here (`expires_at` moves forward every third of the lease period), and
-- each account is worked by the instance whose lease row names it. A
-- claim adds one to `fence`; every commit of an instance re-reads the rows
-- of the accounts it wrote (FOR SHARE) and gives up unless its own fence is
-- still there, so an instance that lost a lease cannot commit for it.
CREATE TABLE instances (
    id         text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE leases (
    account    text PRIMARY KEY,
    owner      text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    fence      bigint NOT NULL DEFAULT 0
);
