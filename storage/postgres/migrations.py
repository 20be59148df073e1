"""The PostgreSQL schema, version by version. Each entry moves the database one version up; the
table ``schema_migrations`` says where a database stands. Entries are append-only: a released
migration is never edited.

Version 1 is the SQLite schema as it stands at its version 12 (``storage/sqlite/migrations.py``),
in PostgreSQL's own types: times are ``timestamptz``, JSON is ``jsonb``, flags are ``boolean``.
The partial indexes are the same, for the same reasons (each is explained there), so that a poll
cycle's cost follows the work in flight rather than the history kept. Jobs leave room in each
page (``fillfactor``): a poll rewrites every job in flight, and a new row version that fits in
its page updates no index (a "HOT" update), which made recording 10,000 polls three times
cheaper. Ids are compared byte by byte (``COLLATE "C"``): they are ours, and ordering by them
must not depend on the server's locale.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: everything the SQLite schema has at its version 12.
    """
    CREATE TABLE batches (
        id                    text COLLATE "C" PRIMARY KEY,
        team_id               text,
        channel_id            text NOT NULL,
        message_ts            text NOT NULL,
        thread_ts             text NOT NULL,
        user_id               text,
        provider              text NOT NULL,
        source                text NOT NULL,
        state                 text NOT NULL,
        language_hints        jsonb NOT NULL DEFAULT '[]',
        language_hints_strict boolean NOT NULL DEFAULT false,
        reply_ts              text,
        attempts              integer NOT NULL DEFAULT 0,
        next_attempt_at       timestamptz,
        created_at            timestamptz NOT NULL,
        updated_at            timestamptz NOT NULL,
        delivered_at          timestamptz,
        status_ts             text,
        status_text           text,
        status_updated_at     timestamptz,
        failing_since         timestamptz
    );
    CREATE INDEX batches_by_state ON batches (state);
    CREATE INDEX batches_by_channel ON batches (channel_id, created_at);
    -- A message's running batch, looked for before a retry or a shortcut starts another.
    CREATE INDEX batches_by_message ON batches (channel_id, message_ts);

    CREATE TABLE jobs (
        id                  text COLLATE "C" PRIMARY KEY,
        batch_id            text COLLATE "C" NOT NULL REFERENCES batches (id),
        position            integer NOT NULL,
        kind                text NOT NULL,
        provider            text NOT NULL,
        filename            text NOT NULL,
        slack_file_id       text,
        url                 text,
        download_url        text,
        mimetype            text,
        size_bytes          bigint,
        duration_ms         bigint,
        needs_file_info     boolean NOT NULL DEFAULT false,
        dedupe_key          text UNIQUE,
        state               text NOT NULL,
        attempts            integer NOT NULL DEFAULT 0,
        next_attempt_at     timestamptz,
        error               text,
        error_detail        text,
        spool_path          text,
        provider_file_id    text,
        provider_upload_id  text,
        provider_job_id     text,
        provider_eta_at     timestamptz,
        transcript          jsonb,
        raw_result          jsonb,
        attachment_uploaded boolean NOT NULL DEFAULT false,
        cleaned_up          boolean NOT NULL DEFAULT false,
        created_at          timestamptz NOT NULL,
        updated_at          timestamptz NOT NULL,
        finished_at         timestamptz,
        stalled_since       timestamptz,
        sent_at             timestamptz,
        resubmissions       integer NOT NULL DEFAULT 0,
        held_by             text
    ) WITH (fillfactor = 70);
    CREATE INDEX jobs_by_batch ON jobs (batch_id, position);
    CREATE INDEX jobs_by_remote_id ON jobs (provider, provider_job_id);
    CREATE INDEX jobs_by_state_and_provider ON jobs (state, provider);
    CREATE INDEX jobs_awaiting_clean_up ON jobs (batch_id, position) WHERE NOT cleaned_up;
    CREATE INDEX jobs_with_spool ON jobs (batch_id) WHERE spool_path IS NOT NULL;
    CREATE INDEX jobs_sent ON jobs (batch_id) WHERE sent_at IS NOT NULL;
    CREATE INDEX jobs_unfinished ON jobs (batch_id)
        WHERE state NOT IN ('completed', 'failed', 'skipped');
    CREATE INDEX jobs_held ON jobs (batch_id) WHERE held_by IS NOT NULL;
    CREATE INDEX jobs_at_provider ON jobs (provider, size_bytes)
        WHERE NOT cleaned_up AND provider_file_id IS NOT NULL;

    CREATE TABLE processed_events (
        event_id text PRIMARY KEY,
        seen_at  timestamptz NOT NULL
    );

    CREATE TABLE channel_settings (
        channel_id            text PRIMARY KEY,
        provider              text,
        auto                  boolean NOT NULL DEFAULT true,
        language_hints        jsonb NOT NULL DEFAULT '[]',
        language_hints_strict boolean NOT NULL DEFAULT false,
        updated_at            timestamptz NOT NULL
    );

    CREATE TABLE provider_account_problems (
        provider   text PRIMARY KEY,
        reason     text NOT NULL,
        detail     text NOT NULL,
        message    text NOT NULL,
        steps      jsonb NOT NULL,
        since      timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
    );
    """,
    # 2: the SQLite schema's version 13: what a channel asks of the transcript besides its
    # languages, recorded on each batch at creation.
    """
    ALTER TABLE channel_settings
        ADD COLUMN vocabulary jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN context_text text,
        ADD COLUMN translation text,
        ADD COLUMN mark_doubtful boolean NOT NULL DEFAULT false;
    ALTER TABLE batches
        ADD COLUMN vocabulary jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN context_text text,
        ADD COLUMN translation text,
        ADD COLUMN mark_doubtful boolean NOT NULL DEFAULT false;
    """,
    # 3: speaker names and the files attached to each reply, as SQLite's version 14 (explained
    # there).
    """
    CREATE TABLE speaker_names (
        batch_id        text COLLATE "C" PRIMARY KEY REFERENCES batches (id),
        names           jsonb NOT NULL,
        version         integer NOT NULL,
        shown           integer NOT NULL DEFAULT 0,
        files_version   integer NOT NULL DEFAULT 0,
        replacing_since timestamptz,
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz,
        failing_since   timestamptz,
        updated_at      timestamptz NOT NULL
    );
    CREATE INDEX speaker_names_to_show ON speaker_names (updated_at) WHERE shown < version;

    CREATE TABLE reply_files (
        batch_id   text COLLATE "C" NOT NULL REFERENCES batches (id),
        file_id    text NOT NULL,
        filename   text NOT NULL,
        retiring   boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (batch_id, file_id)
    );
    """,
    # 4: installations and OAuth states, as SQLite's version 15 (explained there).
    """
    CREATE TABLE slack_installations (
        enterprise_id         text COLLATE "C" NOT NULL,
        team_id               text COLLATE "C" NOT NULL,
        is_enterprise_install boolean NOT NULL,
        app_id                text,
        team_name             text,
        enterprise_name       text,
        enterprise_url        text,
        bot_token             text,
        bot_refresh_token     text,
        bot_token_expires_at  timestamptz,
        bot_user_id           text,
        bot_id                text,
        bot_scopes            text NOT NULL DEFAULT '',
        installer_user_id     text,
        installed_at          timestamptz NOT NULL,
        updated_at            timestamptz NOT NULL,
        PRIMARY KEY (enterprise_id, team_id)
    );

    CREATE TABLE oauth_states (
        state      text COLLATE "C" PRIMARY KEY,
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);
    """,
    # 5: leases, so that several processes share the work without two taking the same unit: who
    # holds a job's next step or a batch's reply and progress message, and until when. The lease
    # columns are not indexed (renewing and releasing name rows by id); the unfinished jobs are,
    # oldest first, so that a cycle claiming its share of a large backlog reads that share
    # rather than sorting the whole backlog (100,000 jobs in flight: 390 ms to claim 10,000
    # without it, 190 ms with it). And the notices that a transcription ended which came before
    # the answer that started it, kept for that answer, whichever process receives either.
    """
    ALTER TABLE jobs ADD COLUMN lease_owner text, ADD COLUMN lease_expires_at timestamptz;
    ALTER TABLE batches ADD COLUMN lease_owner text, ADD COLUMN lease_expires_at timestamptz;
    CREATE INDEX jobs_unfinished_by_age ON jobs (created_at, batch_id, position)
        WHERE state NOT IN ('completed', 'failed', 'skipped');
    CREATE TABLE early_notices (
        provider  text NOT NULL,
        remote_id text NOT NULL,
        seen_at   timestamptz NOT NULL,
        PRIMARY KEY (provider, remote_id)
    );
    """,
    # 6: the organisation of a batch's workspace, as SQLite's version 17.
    """
    ALTER TABLE batches ADD COLUMN enterprise_id text;
    """,
    # 7: each workspace's work kept apart, as SQLite's version 18: channel settings by team id
    # and channel id (rows from before get team id '' until adopted), the channel views' index,
    # and the workspaces or organisations that removed the app.
    """
    ALTER TABLE channel_settings
        ADD COLUMN team_id text NOT NULL DEFAULT '',
        ADD COLUMN enterprise_id text;
    ALTER TABLE channel_settings DROP CONSTRAINT channel_settings_pkey;
    ALTER TABLE channel_settings ADD PRIMARY KEY (team_id, channel_id);
    CREATE INDEX channel_settings_by_enterprise ON channel_settings (enterprise_id);

    CREATE INDEX batches_by_team_channel ON batches (team_id, channel_id, created_at);
    CREATE INDEX batches_by_enterprise ON batches (enterprise_id);

    CREATE TABLE removed_workspaces (
        team_id       text NOT NULL,
        enterprise_id text NOT NULL,
        removed_at    timestamptz NOT NULL,
        PRIMARY KEY (team_id, enterprise_id)
    );
    """,
    # 8: the open batches by workspace, oldest first: a claim lists the workspaces with open work
    # (one probe each) and reads each one's oldest due jobs, so that workspaces take turns
    # without ranking every due job (storage.leases). The expressions leave no NULL in the key.
    """
    CREATE INDEX batches_open_by_workspace
        ON batches ((COALESCE(enterprise_id, '')), (COALESCE(team_id, '')), created_at, id)
        WHERE state = 'open';
    -- The open batches with language hints, and those asking for transcription options: a
    -- cycle looks for the batches it claimed among these few, not among every open batch.
    CREATE INDEX batches_open_with_hints ON batches (id)
        WHERE state = 'open' AND language_hints != '[]'::jsonb;
    CREATE INDEX batches_open_with_options ON batches (id)
        WHERE state = 'open' AND (vocabulary != '[]'::jsonb OR context_text IS NOT NULL
            OR translation IS NOT NULL OR mark_doubtful);

    -- When a job of the batch last finished, written with the job (batches from before: their
    -- last finished job's time). A reply can be due, or a progress message out of date, only
    -- for a running batch with a finished job: a cycle reads those, not every open batch's
    -- jobs. The progress message's other reasons are found through its ts (none yet, or being
    -- posted) and its text (the note of work held for an account).
    ALTER TABLE batches ADD COLUMN jobs_finished_at timestamptz;
    UPDATE batches SET jobs_finished_at = f.at
        FROM (SELECT batch_id, max(COALESCE(finished_at, updated_at)) AS at FROM jobs
              WHERE state IN ('completed', 'failed', 'skipped') GROUP BY batch_id) AS f
        WHERE f.batch_id = batches.id AND batches.state IN ('delivering', 'open');
    CREATE INDEX batches_with_finished_jobs ON batches (created_at)
        WHERE state IN ('delivering', 'open') AND jobs_finished_at IS NOT NULL;
    CREATE INDEX batches_open_by_status ON batches (status_ts) WHERE state = 'open';
    -- Of the text, its start alone: an index entry must stay under 2,704 bytes, and a message can
    -- name a file whose name is longer.
    CREATE INDEX batches_open_by_status_text
        ON batches ((left(status_text, 200) COLLATE "C")) WHERE state = 'open';
    -- The finished jobs that may still own something at their provider: with the jobs of
    -- cancelled batches, all that a clean-up can be due for.
    CREATE INDEX jobs_finished_to_clean_up ON jobs (batch_id, position)
        WHERE NOT cleaned_up AND state IN ('completed', 'failed', 'skipped')
          AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL);
    """,
]

#: The schema this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)

#: Every table a copy fills, parents before children (``storage.moving``).
TABLES = (
    "batches",
    "jobs",
    "processed_events",
    "channel_settings",
    "provider_account_problems",
    "speaker_names",
    "reply_files",
    "slack_installations",
    "oauth_states",
    "early_notices",
    "removed_workspaces",
)
