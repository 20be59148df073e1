"""The SQLite schema, version by version. Each entry moves the database one version up; ``PRAGMA
user_version`` says where a database stands. Entries are append-only: a released migration is
never edited."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: batches, jobs, processed events, channel settings.
    """
    CREATE TABLE batches (
        id              TEXT PRIMARY KEY,
        team_id         TEXT,
        channel_id      TEXT NOT NULL,
        message_ts      TEXT NOT NULL,
        thread_ts       TEXT NOT NULL,
        user_id         TEXT,
        provider        TEXT NOT NULL,
        source          TEXT NOT NULL,
        state           TEXT NOT NULL,
        language_hints  TEXT NOT NULL DEFAULT '[]',
        reply_ts        TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        delivered_at    TEXT
    );
    CREATE INDEX batches_by_state ON batches (state);
    CREATE INDEX batches_by_channel ON batches (channel_id, created_at);

    CREATE TABLE jobs (
        id                  TEXT PRIMARY KEY,
        batch_id            TEXT NOT NULL REFERENCES batches (id),
        position            INTEGER NOT NULL,
        kind                TEXT NOT NULL,
        provider            TEXT NOT NULL,
        filename            TEXT NOT NULL,
        slack_file_id       TEXT,
        url                 TEXT,
        download_url        TEXT,
        mimetype            TEXT,
        size_bytes          INTEGER,
        needs_file_info     INTEGER NOT NULL DEFAULT 0,
        dedupe_key          TEXT UNIQUE,
        state               TEXT NOT NULL,
        attempts            INTEGER NOT NULL DEFAULT 0,
        next_attempt_at     TEXT,
        error               TEXT,
        error_detail        TEXT,
        spool_path          TEXT,
        provider_file_id    TEXT,
        provider_upload_id  TEXT,
        provider_job_id     TEXT,
        provider_eta_at     TEXT,
        transcript          TEXT,
        raw_result          TEXT,
        attachment_uploaded INTEGER NOT NULL DEFAULT 0,
        cleaned_up          INTEGER NOT NULL DEFAULT 0,
        created_at          TEXT NOT NULL,
        updated_at          TEXT NOT NULL,
        finished_at         TEXT
    );
    CREATE INDEX jobs_by_batch ON jobs (batch_id, position);
    CREATE INDEX jobs_by_state ON jobs (state);

    CREATE TABLE processed_events (
        event_id TEXT PRIMARY KEY,
        seen_at  TEXT NOT NULL
    );

    CREATE TABLE channel_settings (
        channel_id     TEXT PRIMARY KEY,
        provider       TEXT,
        auto           INTEGER NOT NULL DEFAULT 1,
        language_hints TEXT NOT NULL DEFAULT '[]',
        updated_at     TEXT NOT NULL
    );
    """,
    # 2: the thread's progress message of a running batch.
    """
    ALTER TABLE batches ADD COLUMN status_ts TEXT;
    ALTER TABLE batches ADD COLUMN status_text TEXT;
    ALTER TABLE batches ADD COLUMN status_updated_at TEXT;
    """,
    # 3: find the jobs a provider's webhook names.
    """
    CREATE INDEX jobs_by_remote_id ON jobs (provider, provider_job_id);
    """,
    # 4: indexes for what every poll cycle and every /metrics scrape reads, so their cost follows
    # the work in flight rather than the history kept. Jobs still to clean up are a few among
    # many finished ones (a partial index holds only those), and counting jobs by state and
    # provider reads a covering index instead of the table. The (state, provider) index serves
    # every lookup the (state) one did.
    """
    CREATE INDEX jobs_awaiting_clean_up ON jobs (batch_id, position) WHERE cleaned_up = 0;
    CREATE INDEX jobs_by_state_and_provider ON jobs (state, provider);
    DROP INDEX jobs_by_state;
    """,
    # 5: when a job started waiting on its current step (or failing at it), and when a batch's
    # reply started failing to post: age limits count from there, not from creation, so work
    # that queued for long still gets its full allowance of retries.
    """
    ALTER TABLE jobs ADD COLUMN stalled_since TEXT;
    ALTER TABLE batches ADD COLUMN failing_since TEXT;
    """,
    # 6: a call that may create something at the provider (an upload, a transcription) was sent
    # and its answer not recorded yet: after a crash, look for what it created before sending
    # it again.
    # Also: jobs still holding a spool file are few, so the clean-up's look-up is indexed.
    """
    ALTER TABLE jobs ADD COLUMN sent_at TEXT;
    UPDATE jobs SET spool_path = NULL WHERE state NOT IN ('queued', 'downloading', 'uploading');
    CREATE INDEX jobs_with_spool ON jobs (batch_id) WHERE spool_path IS NOT NULL;
    CREATE INDEX jobs_sent ON jobs (batch_id) WHERE sent_at IS NOT NULL;
    """,
    # 7: the unfinished jobs, without reading the finished ones: a poll cycle asks every few
    # seconds which are due, and finished jobs are kept for good. Not by due time: that changes
    # at every poll, and keeping an index of it up to date doubled the cost of recording polls.
    """
    CREATE INDEX jobs_unfinished ON jobs (batch_id)
        WHERE state NOT IN ('completed', 'failed', 'skipped');
    """,
    # 8: how often a job was submitted again because the provider lost the work it had accepted,
    # so that a provider that keeps losing it cannot keep the job going forever.
    """
    ALTER TABLE jobs ADD COLUMN resubmissions INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: a Slack file's duration as Slack gives it, checked against the provider's limit before
    # the download, also when the job is retried.
    """
    ALTER TABLE jobs ADD COLUMN duration_ms INTEGER;
    """,
    # 10: a provider account that refuses new work (its balance or budget used up) until an admin
    # acts, and the jobs waiting for it: both outlive a restart, so the operator keeps being told
    # and each thread's note is neither lost nor posted twice. Waiting jobs are few, so they are
    # found through an index of their own.
    """
    CREATE TABLE provider_account_problems (
        provider   TEXT PRIMARY KEY,
        reason     TEXT NOT NULL,
        detail     TEXT NOT NULL,
        message    TEXT NOT NULL,
        steps      TEXT NOT NULL,
        since      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN held_by TEXT;
    CREATE INDEX jobs_held ON jobs (batch_id) WHERE held_by IS NOT NULL;
    """,
    # 11: the files each provider holds for us, counted before each upload that might pass the
    # provider's storage caps: an index of just those, with their sizes.
    """
    CREATE INDEX jobs_at_provider ON jobs (provider, size_bytes)
        WHERE cleaned_up = 0 AND provider_file_id IS NOT NULL;
    """,
    # 12: strict language hints: a channel can ask the provider to keep to its hinted languages
    # rather than only lean towards them, and a batch records that with its hints at creation.
    """
    ALTER TABLE channel_settings ADD COLUMN language_hints_strict INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN language_hints_strict INTEGER NOT NULL DEFAULT 0;
    """,
    # 13: what a channel asks of the transcript besides its languages (a vocabulary, a sentence of
    # context, a translation, doubtful words marked), recorded on each batch at creation as the
    # language hints are. The translation is its language codes, ``de`` or ``en:es``.
    """
    ALTER TABLE channel_settings ADD COLUMN vocabulary TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE channel_settings ADD COLUMN context_text TEXT;
    ALTER TABLE channel_settings ADD COLUMN translation TEXT;
    ALTER TABLE channel_settings ADD COLUMN mark_doubtful INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE batches ADD COLUMN vocabulary TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE batches ADD COLUMN context_text TEXT;
    ALTER TABLE batches ADD COLUMN translation TEXT;
    ALTER TABLE batches ADD COLUMN mark_doubtful INTEGER NOT NULL DEFAULT 0;
    """,
    # 14: who the speakers of a delivered batch are, and how far its reply shows them; and the
    # files attached to each reply, so that a reply rendered again with the names replaces them
    # (and a crash halfway leaves neither two copies nor none). Namings whose reply is behind are
    # few among many shown ones: a partial index finds them.
    """
    CREATE TABLE speaker_names (
        batch_id        TEXT PRIMARY KEY REFERENCES batches (id),
        names           TEXT NOT NULL,
        version         INTEGER NOT NULL,
        shown           INTEGER NOT NULL DEFAULT 0,
        files_version   INTEGER NOT NULL DEFAULT 0,
        replacing_since TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        failing_since   TEXT,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX speaker_names_to_show ON speaker_names (updated_at) WHERE shown < version;

    CREATE TABLE reply_files (
        batch_id   TEXT NOT NULL REFERENCES batches (id),
        file_id    TEXT NOT NULL,
        filename   TEXT NOT NULL,
        retiring   INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (batch_id, file_id)
    );
    """,
    # 15: the workspaces and organisations the app is installed in through OAuth, one row each
    # (installing again replaces it), and the states of installs under way, each consumed once.
    # A row's ids are '' where there is none (an organisation-wide install has no team id): a
    # primary key cannot hold NULL in PostgreSQL, and the two schemas keep the same rows.
    """
    CREATE TABLE slack_installations (
        enterprise_id         TEXT NOT NULL,
        team_id               TEXT NOT NULL,
        is_enterprise_install INTEGER NOT NULL,
        app_id                TEXT,
        team_name             TEXT,
        enterprise_name       TEXT,
        enterprise_url        TEXT,
        bot_token             TEXT,
        bot_refresh_token     TEXT,
        bot_token_expires_at  TEXT,
        bot_user_id           TEXT,
        bot_id                TEXT,
        bot_scopes            TEXT NOT NULL DEFAULT '',
        installer_user_id     TEXT,
        installed_at          TEXT NOT NULL,
        updated_at            TEXT NOT NULL,
        PRIMARY KEY (enterprise_id, team_id)
    );

    CREATE TABLE oauth_states (
        state      TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX oauth_states_by_expiry ON oauth_states (expires_at);
    """,
    # 16: a provider's notice that a transcription ended, kept when it comes before the answer
    # that started it, for that answer to find.
    """
    CREATE TABLE early_notices (
        provider  TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        seen_at   TEXT NOT NULL,
        PRIMARY KEY (provider, remote_id)
    );
    """,
    # 17: the Enterprise Grid organisation of a batch's workspace, to find the installation whose
    # token its Slack calls use.
    """
    ALTER TABLE batches ADD COLUMN enterprise_id TEXT;
    """,
    # 18: each workspace's work kept apart. Channel settings are a workspace's: one channel id
    # may be in two workspaces (Slack Connect), so they are kept by team id and channel id; rows
    # from before have team id '' until the bot adopts them for its workspace. The channel views
    # read a workspace's batches of a channel. And the workspaces (team id) or organisations
    # (enterprise id, team id '') that removed the app, whose work is stopped and erased.
    """
    CREATE TABLE channel_settings_by_team (
        team_id               TEXT NOT NULL DEFAULT '',
        enterprise_id         TEXT,
        channel_id            TEXT NOT NULL,
        provider              TEXT,
        auto                  INTEGER NOT NULL DEFAULT 1,
        language_hints        TEXT NOT NULL DEFAULT '[]',
        updated_at            TEXT NOT NULL,
        language_hints_strict INTEGER NOT NULL DEFAULT 0,
        vocabulary            TEXT NOT NULL DEFAULT '[]',
        context_text          TEXT,
        translation           TEXT,
        mark_doubtful         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (team_id, channel_id)
    );
    INSERT INTO channel_settings_by_team
        (channel_id, provider, auto, language_hints, updated_at, language_hints_strict,
         vocabulary, context_text, translation, mark_doubtful)
        SELECT channel_id, provider, auto, language_hints, updated_at, language_hints_strict,
               vocabulary, context_text, translation, mark_doubtful
        FROM channel_settings;
    DROP TABLE channel_settings;
    ALTER TABLE channel_settings_by_team RENAME TO channel_settings;
    CREATE INDEX channel_settings_by_enterprise ON channel_settings (enterprise_id);

    CREATE INDEX batches_by_team_channel ON batches (team_id, channel_id, created_at);
    CREATE INDEX batches_by_enterprise ON batches (enterprise_id);

    CREATE TABLE removed_workspaces (
        team_id       TEXT NOT NULL,
        enterprise_id TEXT NOT NULL,
        removed_at    TEXT NOT NULL,
        PRIMARY KEY (team_id, enterprise_id)
    );
    """,
    # 19: the open batches with language hints, and those asking for transcription options,
    # as PostgreSQL's version 8: a cycle reads these few instead of every open batch.
    """
    CREATE INDEX batches_open_with_hints ON batches (id)
        WHERE state = 'open' AND language_hints != '[]';
    CREATE INDEX batches_open_with_options ON batches (id)
        WHERE state = 'open' AND (vocabulary != '[]' OR context_text IS NOT NULL
            OR translation IS NOT NULL OR mark_doubtful != 0);

    -- As PostgreSQL's version 8 too: when a job of the batch last finished, and the indexes
    -- through which a cycle finds the batches whose reply or progress message may be due.
    ALTER TABLE batches ADD COLUMN jobs_finished_at TEXT;
    UPDATE batches SET jobs_finished_at = (
            SELECT max(COALESCE(finished_at, updated_at)) FROM jobs
            WHERE jobs.batch_id = batches.id AND state IN ('completed', 'failed', 'skipped'))
        WHERE state IN ('delivering', 'open');
    CREATE INDEX batches_with_finished_jobs ON batches (created_at)
        WHERE state IN ('delivering', 'open') AND jobs_finished_at IS NOT NULL;
    CREATE INDEX batches_open_by_status ON batches (status_ts) WHERE state = 'open';
    CREATE INDEX batches_open_by_status_text ON batches (status_text) WHERE state = 'open';
    CREATE INDEX jobs_finished_to_clean_up ON jobs (batch_id, position)
        WHERE cleaned_up = 0 AND state IN ('completed', 'failed', 'skipped')
          AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL);
    """,
]
