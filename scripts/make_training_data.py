"""Generate the supervised fine-tuning sample data from the Skyline Vault fact sheet.

Writes ``genai_assets/data/training/chat.jsonl`` (chat ``messages`` records) and
``genai_assets/data/training/instructions.jsonl`` (``instruction``/``input``/
``response`` records). Every answer restates a fact from
``genai_assets/data/FACTS.md``; the variety comes from several phrasings per
question and per answer, a few system prompts, follow-up turns and small tasks
with an input (explain an error code, write a command, look up a port).

Deterministic: a fixed seed, so re-running gives the same files.

Usage::

    python scripts/make_training_data.py
"""

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "genai_assets" / "data" / "training"
SEED = 20251104
N_CHAT = 250
N_INSTRUCTIONS = 250

SYSTEM_PROMPTS = [
    "You are the Skyline Vault support assistant. Answer briefly and accurately.",
    "You are a helpful assistant for Skyline Vault, the encrypted backup product by Corvid "
    "Systems. Keep answers to one to three sentences.",
    "You answer questions from Skyline Vault administrators. Be concise and give the exact "
    "command or setting when there is one.",
    "You are Corvid Systems' documentation assistant for Skyline Vault 3.2.",
]

# (questions, answers): every question can be answered by every answer of its fact.
FACTS: list[tuple[list[str], list[str]]] = [
    (
        [
            "Which port does the Skyline Vault web console use?",
            "What's the default port of the Skyline Vault console?",
            "On which port do I reach the web UI and the REST API?",
        ],
        [
            "The web console and the REST API listen on port 8443 (HTTPS) by default. "
            "You can change it with server.listen_port in /etc/skyvault/vault.toml.",
            "Port 8443. The console and the API share one HTTPS listener, set by "
            "server.listen_port in vault.toml.",
        ],
    ),
    (
        [
            "Which port do agents connect to?",
            "What port must be open from protected hosts to the server?",
            "My agent can't reach the server. Which port does it use?",
        ],
        [
            "Agents connect to the server on port 7443 with mutual TLS. Make sure every "
            "protected host can reach that port.",
            "Port 7443/tcp, set by agent.listen_port. The connection uses mutual TLS.",
        ],
    ),
    (
        [
            "Which port is used for replication?",
            "What port do I open between the primary and the DR site?",
            "Which port do two Skyline Vault servers use to replicate?",
        ],
        [
            "Replication uses port 9443 with mutual TLS, in both directions between the "
            "primary and the secondary site.",
            "Port 9443/tcp (replication.port). Open it only between the two sites.",
        ],
    ),
    (
        [
            "Where can Prometheus scrape Skyline Vault metrics?",
            "What is the metrics endpoint?",
            "Which port serves the Prometheus metrics?",
        ],
        [
            "Metrics are served in Prometheus format at http://<host>:9464/metrics. The "
            "endpoint is plain HTTP, so restrict it to your monitoring network.",
            "Scrape port 9464 at the path /metrics. Change the port with metrics.port in "
            "vault.toml.",
        ],
    ),
    (
        [
            "Where is the Skyline Vault configuration file?",
            "Which file holds the server settings?",
            "Where do I change Skyline Vault settings?",
        ],
        [
            "The configuration lives in /etc/skyvault/vault.toml, a TOML file. Check it "
            "with skyvault config validate after every edit.",
            "In /etc/skyvault/vault.toml. Restart the service, or run skyvault config "
            "reload for the settings that support it.",
        ],
    ),
    (
        [
            "How do I install Skyline Vault on Ubuntu?",
            "What's the package name for Skyline Vault?",
            "How do I install the server software?",
        ],
        [
            "Add the Corvid Systems repository at packages.corvidsystems.example, then run "
            "sudo apt install skyline-vault (or sudo dnf install skyline-vault on RHEL).",
            "Install the skyline-vault package from packages.corvidsystems.example and "
            "start it with sudo systemctl enable --now skyvault.",
        ],
    ),
    (
        [
            "What does skyvault init do?",
            "What happens when I run skyvault init?",
            "Which command sets up a fresh server?",
        ],
        [
            "skyvault init creates the admin user with a one-time password valid for 24 "
            "hours, initialises Keystone and prints the five recovery shares.",
            "Run sudo skyvault init once after installing. It creates the admin account, "
            "sets up Keystone and shows the recovery shares, which are never shown again.",
        ],
    ),
    (
        [
            "How long is the initial admin password valid?",
            "The one-time password from skyvault init no longer works. Why?",
        ],
        [
            "The one-time admin password expires after 24 hours. Run skyvault user "
            "reset-password admin as root to get a new one.",
            "It is valid for 24 hours only. Generate a new one with skyvault user "
            "reset-password admin on the server.",
        ],
    ),
    (
        [
            "Which operating systems are supported for the server?",
            "Can I run the Skyline Vault server on Ubuntu 24.04?",
            "What Linux distributions does Skyline Vault 3.2 support?",
        ],
        [
            "The server runs on 64-bit Ubuntu 22.04 or 24.04 LTS, RHEL 9 and Rocky Linux 9.",
            "Supported are Ubuntu 22.04 and 24.04 LTS, Red Hat Enterprise Linux 9 and "
            "Rocky Linux 9, all 64-bit.",
        ],
    ),
    (
        [
            "How much memory does a Skyline Vault server need?",
            "What are the minimum CPU and RAM requirements?",
            "How much RAM do I need per TiB of backup data?",
        ],
        [
            "At least 4 vCPU and 16 GiB of RAM, plus 1 GiB of RAM for every 4 TiB of "
            "unique data after deduplication.",
            "Start from 16 GiB and add 1 GiB per 4 TiB of deduplicated data; 40 TiB of "
            "unique data therefore needs about 26 GiB.",
        ],
    ),
    (
        [
            "Where should the metadata be stored?",
            "Does the metadata need fast disks?",
        ],
        [
            "Put /var/lib/skyvault/meta on SSD or NVMe with at least 100 GiB free. Slow "
            "metadata storage is the most common cause of slow snapshots.",
            "On SSD or NVMe with at least 100 GiB of free space; slow disks make snapshots slow.",
        ],
    ),
    (
        [
            "How do I create a vault?",
            "What's the command to make a new vault?",
        ],
        [
            "Run skyvault vault create <name>. Add --policy to choose a retention policy; "
            "without it the vault gets standard-30.",
            "Use skyvault vault create, for example skyvault vault create finance "
            "--policy gfs-default.",
        ],
    ),
    (
        [
            "How do I take a snapshot by hand?",
            "What's the command for an ad-hoc backup?",
        ],
        [
            "Run skyvault snapshot create --vault <name>, optionally with --agent, --path "
            "and --label.",
            "Use skyvault snapshot create --vault finance --path /srv/finance; add --label "
            "to make it easy to find later.",
        ],
    ),
    (
        [
            "What does a snapshot ID look like?",
            "How are snapshots named?",
        ],
        [
            "Snapshot IDs combine snap-, the date and a sequence number, for example "
            "snap-20251104-0007.",
            "They look like snap-20251104-0007: the seventh snapshot taken on 4 November "
            "2025. IDs are never reused.",
        ],
    ),
    (
        [
            "How many snapshots can a vault hold?",
            "Is there a limit on snapshots per vault?",
        ],
        [
            "A vault can hold at most 10,000 snapshots. Choose a retention policy that "
            "keeps it below that.",
            "10,000 per vault. At the limit new snapshots fail until pruning removes older ones.",
        ],
    ),
    (
        [
            "How many vaults can one server have?",
            "What is the maximum number of vaults?",
        ],
        [
            "A server can hold up to 256 vaults.",
            "Up to 256 vaults per server, each with up to 10,000 snapshots.",
        ],
    ),
    (
        [
            "What does the standard-30 policy do?",
            "Which retention policy do new vaults get?",
        ],
        [
            "New vaults get standard-30, which keeps daily snapshots for 30 days.",
            "standard-30 is the default: it keeps one daily snapshot for 30 days.",
        ],
    ),
    (
        [
            "What does gfs-default keep?",
            "Explain the gfs-default retention policy.",
        ],
        [
            "gfs-default keeps 7 daily, 4 weekly, 12 monthly and 7 yearly snapshots.",
            "It is a grandfather-father-son scheme: 7 daily, 4 weekly, 12 monthly and 7 "
            "yearly snapshots.",
        ],
    ),
    (
        [
            "What is the compliance-7y policy?",
            "Which built-in policy keeps data for seven years?",
        ],
        [
            "compliance-7y keeps every snapshot for 7 years (2,557 days) and locks the vault "
            "so nothing can be deleted early.",
            "The compliance-7y policy: all snapshots for 2,557 days, with vault lock applied "
            "automatically.",
        ],
    ),
    (
        [
            "How do I create a custom retention policy?",
            "Can I define my own retention rules?",
        ],
        [
            "Write a TOML file with keep_hourly, keep_daily or keep_monthly, run skyvault "
            "policy create --file policy.toml, then skyvault policy apply <policy> --vault "
            "<name>.",
            "Create it from a TOML file with skyvault policy create and attach it with "
            "skyvault policy apply; use --dry-run to preview what would be pruned.",
        ],
    ),
    (
        [
            "When does pruning run?",
            "At what time are expired snapshots removed?",
        ],
        [
            "Pruning runs daily at 02:00 server local time, set by retention.prune_schedule.",
            "Every day at 02:00 local time. It never removes the newest snapshot of a vault.",
        ],
    ),
    (
        [
            "How long do deleted snapshots stay in the recycle bin?",
            "I deleted a snapshot by mistake. Can I get it back?",
        ],
        [
            "Deleted snapshots stay in the recycle bin for 14 days. Bring one back with "
            "skyvault snapshot undelete <id>.",
            "For 14 days; during that time skyvault snapshot undelete <id> brings a snapshot back.",
        ],
    ),
    (
        [
            "How do I restore a snapshot to a new folder?",
            "What's the basic restore command?",
        ],
        [
            "Run skyvault restore --snapshot <id> --target <path>. Restoring to an empty "
            "directory overwrites nothing.",
            "Use skyvault restore --snapshot snap-20251104-0007 --target /restore/finance.",
        ],
    ),
    (
        [
            "How do I restore a single file?",
            "Can I restore only some files from a snapshot?",
        ],
        [
            "Use skyvault restore with --include and a path or glob, browse the snapshot in "
            "the console, or mount it with skyvault mount and copy the file.",
            "Add --include (repeatable) to skyvault restore, for example --include "
            "/srv/finance/ledger.db.",
        ],
    ),
    (
        [
            "How do I restore over the original data?",
            "Can I restore in place?",
        ],
        [
            "Use --in-place instead of --target. Skyline Vault asks for confirmation because "
            "current files are overwritten.",
            "Run skyvault restore --snapshot <id> --in-place. Take a fresh snapshot "
            "first so you can undo it.",
        ],
    ),
    (
        [
            "What does the --verify option of skyvault restore do?",
            "How can I check that restored files are correct?",
        ],
        [
            "--verify, added in 3.1, reads every restored file back and compares it with "
            "the checksums stored in the snapshot.",
            "Add --verify to skyvault restore. It roughly doubles restore time but proves "
            "the restored data matches the snapshot.",
        ],
    ),
    (
        [
            "What is instant restore?",
            "How do I mount a snapshot?",
            "Can I browse a snapshot without restoring it?",
        ],
        [
            "Since 3.2, skyvault mount <snapshot-id> <mountpoint> mounts a snapshot "
            "read-only through FUSE; unmount with skyvault unmount.",
            "Instant restore means mounting a snapshot read-only via FUSE with skyvault "
            "mount; files are available within seconds because chunks are fetched on demand.",
        ],
    ),
    (
        [
            "How fast is a restore on an SV-600?",
            "What restore throughput can I expect?",
        ],
        [
            "A single restore job on an SV-600 typically reaches 1.5 GB/s; the server runs "
            "up to 8 restore jobs in parallel.",
            "About 1.5 GB/s per job on an SV-600, with at most 8 concurrent restore jobs.",
        ],
    ),
    (
        [
            "What is a restore point?",
            "Why can't I select some snapshots for restore?",
        ],
        [
            "A restore point is a snapshot that passed verification. Snapshots with "
            "checksum errors (SV-5009) are not offered.",
            "Only verified snapshots, called restore points, can be chosen. Run skyvault "
            "verify --vault <name> to verify a vault.",
        ],
    ),
    (
        [
            "What is Keystone?",
            "Which component manages the encryption keys?",
        ],
        [
            "Keystone is the key manager built into Skyline Vault. It creates, rotates and "
            "protects all keys.",
            "Keystone 2, built in since 3.0, manages every key: the master key, vault keys "
            "and per-snapshot data keys.",
        ],
    ),
    (
        [
            "Describe the Keystone key hierarchy.",
            "How are keys organised in Skyline Vault?",
        ],
        [
            "A master key wraps one vault key per vault, and each snapshot uses its own data "
            "encryption key derived from the vault key with HKDF-SHA-256.",
            "Three levels: master key, vault keys, and a data encryption key per snapshot.",
        ],
    ),
    (
        [
            "Which encryption algorithm does Skyline Vault use?",
            "How is backup data encrypted?",
        ],
        [
            "Data is encrypted with AES-256-GCM on the protected host before it is sent.",
            "AES-256-GCM, after deduplication and zstd compression, with keys from Keystone.",
        ],
    ),
    (
        [
            "How often is the master key rotated?",
            "What is the default key rotation interval?",
        ],
        [
            "Every 90 days by default (keystone.rotation_days). Before 3.2 the default was "
            "180 days.",
            "The master key rotates every 90 days unless you change keystone.rotation_days.",
        ],
    ),
    (
        [
            "How do I rotate the master key right now?",
            "An admin left the company. How do I rotate keys?",
        ],
        [
            "Run skyvault keystone rotate. Vault keys are re-wrapped; data is not "
            "re-encrypted, so it takes seconds.",
            "Use skyvault keystone rotate, and consider skyvault keystone reshare if that "
            "person held a recovery share.",
        ],
    ),
    (
        [
            "How many recovery shares are there?",
            "How many recovery shares do I need to recover the master key?",
        ],
        [
            "Keystone creates five recovery shares, and any three of them recover the master key.",
            "Three of the five shares are needed; two reveal nothing.",
        ],
    ),
    (
        [
            "Keystone is sealed after a reboot. What do I do?",
            "How do I unseal Keystone?",
        ],
        [
            "Run skyvault keystone unseal and enter the unseal passphrase. Servers with a "
            "TPM unseal automatically.",
            "Use skyvault keystone unseal. If it still fails, check that clock skew is under "
            "5 seconds.",
        ],
    ),
    (
        [
            "Can Keystone use an HSM?",
            "Does Skyline Vault support PKCS#11?",
        ],
        [
            "Yes, in the Enterprise edition: Keystone supports HSMs via PKCS#11 and key "
            "servers via KMIP.",
            "Enterprise customers can keep the master key in an HSM (PKCS#11) or a KMIP "
            "server; migrate with skyvault keystone migrate --to-hsm.",
        ],
    ),
    (
        [
            "How do I enable FIPS mode?",
            "Is Skyline Vault FIPS compliant?",
        ],
        [
            "Set keystone.fips_mode = true. Keystone then uses only the FIPS 140-3 validated "
            "cryptographic module.",
            "With keystone.fips_mode = true it restricts itself to the FIPS 140-3 validated "
            "module and approved algorithms.",
        ],
    ),
    (
        [
            "How does deduplication work?",
            "Which chunking algorithm does Skyline Vault use?",
        ],
        [
            "Data is split with FastCDC content-defined chunking into chunks of 16 to 256 "
            "KiB (64 KiB average), and each chunk is stored once.",
            "FastCDC content-defined chunking since 3.0, with an average chunk size of 64 KiB.",
        ],
    ),
    (
        [
            "Which hash identifies chunks?",
            "What fingerprint does deduplication use?",
        ],
        [
            "Chunks are identified by 256-bit BLAKE3 fingerprints.",
            "BLAKE3, which replaced SHA-1 in version 3.0.",
        ],
    ),
    (
        [
            "Is deduplication shared between vaults?",
            "Do tenants share deduplicated chunks?",
        ],
        [
            "Deduplication is global across all vaults of a tenant, but different tenants "
            "never share chunks.",
            "Within a tenant, yes, across all its vaults. Between tenants, never.",
        ],
    ),
    (
        [
            "What deduplication ratio can I expect?",
            "How do I see the dedup ratio?",
        ],
        [
            "VM images and file servers typically reach 3:1 to 8:1. Check with skyvault "
            "dedup stats or the skyvault_dedup_ratio metric.",
            "Run skyvault dedup stats. Typical ratios are 3:1 to 8:1.",
        ],
    ),
    (
        [
            "When does garbage collection run?",
            "Why is space not freed right after I delete snapshots?",
        ],
        [
            "Garbage collection runs weekly on Sunday at 03:00, after the 14-day recycle "
            "period has passed.",
            "Space is freed only after the 14-day recycle bin and the next weekly garbage "
            "collection, Sunday at 03:00 by default.",
        ],
    ),
    (
        [
            "How do I set a quota on a vault?",
            "How can I limit the size of a vault?",
        ],
        [
            "Run skyvault quota set --vault <name> --limit 500GiB. Quotas count stored bytes "
            "after dedup and compression.",
            "Use skyvault quota set with --limit; remove it with skyvault quota clear.",
        ],
    ),
    (
        [
            "When is a quota soft warning sent?",
            "At what usage do I get a quota warning?",
        ],
        [
            "At 80% of the hard limit by default, set by quota.soft_percent.",
            "When a vault reaches 80 percent of its hard limit.",
        ],
    ),
    (
        [
            "What happens when a vault hits its quota?",
            "What does SV-4013 mean?",
        ],
        [
            "New snapshots fail with SV-4013 (quota exceeded); existing snapshots and "
            "restores are unaffected.",
            "New snapshots fail with SV-4013 (quota exceeded); raise the limit, shorten "
            "retention or delete snapshots.",
        ],
    ),
    (
        [
            "How does replication work?",
            "Is replication synchronous?",
        ],
        [
            "Replication is asynchronous: after each snapshot the primary sends only the "
            "chunks the secondary lacks, encrypted, over port 9443.",
            "Asynchronously, every 15 minutes by default; only chunks the secondary lacks "
            "are sent.",
        ],
    ),
    (
        [
            "How often does replication run?",
            "What RPO does replication give?",
        ],
        [
            "Every 15 minutes by default (replication.interval_minutes), giving an RPO of "
            "about 15 minutes.",
            "About 15 minutes, the default replication interval.",
        ],
    ),
    (
        [
            "What is the difference between mirror and archive mode?",
            "What is archive replication mode?",
        ],
        [
            "Mirror mode (the default) keeps the same snapshots at both sites; archive mode, "
            "new in 3.2, lets the secondary keep its own longer retention.",
            "In archive mode, added in 3.2, the secondary keeps its own retention policy "
            "instead of mirroring the primary.",
        ],
    ),
    (
        [
            "How do I limit replication bandwidth?",
            "Can I throttle replication during office hours?",
        ],
        [
            "Set replication.bandwidth_limit_mbps; 0 means unlimited. Since 3.1 you can "
            "define time windows with different limits.",
            "Use replication.bandwidth_limit_mbps and, since 3.1, time windows, for example "
            "200 Mbit/s by day and unlimited at night.",
        ],
    ),
    (
        [
            "How do I fail over to the DR site?",
            "The primary site is down. How do I promote the secondary?",
        ],
        [
            "Run skyvault replicate promote on the secondary. The replicated vaults become "
            "writable and restores work as before.",
            "Use skyvault replicate promote on the secondary site, then point agents at it.",
        ],
    ),
    (
        [
            "Which edition includes replication?",
            "Can I replicate with the Professional edition?",
        ],
        [
            "Replication is part of the Enterprise edition only.",
            "Only Enterprise; the Professional and Community editions do not include replication.",
        ],
    ),
    (
        [
            "What does SV-3004 mean?",
            "Replication fails with SV-3004. What should I check?",
        ],
        [
            "SV-3004 means the replication target is unreachable. Check port 9443 in both "
            "directions; replication retries every 5 minutes.",
            "The target did not answer on port 9443. Check the network and the target's "
            "certificate.",
        ],
    ),
    (
        [
            "Which replication lag should trigger an alert?",
            "What alert do you recommend for replication?",
        ],
        [
            "Alert when skyvault_replication_lag_seconds stays above 3600 for 10 minutes.",
            "Lag above 3600 seconds for 10 minutes.",
        ],
    ),
    (
        [
            "Which metrics does Skyline Vault export?",
            "Name some useful Skyline Vault metrics.",
        ],
        [
            "Among others skyvault_snapshot_duration_seconds, skyvault_dedup_ratio, "
            "skyvault_replication_lag_seconds, skyvault_quota_used_ratio and "
            "skyvault_agents_online.",
            "Snapshot durations and failures, dedup ratio, vault usage, quota usage, "
            "replication lag, key age and online agents, all prefixed skyvault_.",
        ],
    ),
    (
        [
            "Is there a health check endpoint?",
            "What should my load balancer use as a health check?",
        ],
        [
            'GET /api/v2/health on port 8443 returns {"status": "ok"} and needs no token.',
            "Use GET /api/v2/health. It answers HTTP 200 when healthy and 503 otherwise.",
        ],
    ),
    (
        [
            "How do I register an agent?",
            "How do I add a new host to protect?",
        ],
        [
            "Create a token with skyvault agent token (valid 24 hours), install skyvault-agent "
            "on the host and run skyvault-agent register with the token.",
            "Install skyvault-agent on the host and register it with a token from skyvault "
            "agent token; the token is valid for 24 hours.",
        ],
    ),
    (
        [
            "How many agents can a server handle?",
            "Is there an agent limit?",
        ],
        [
            "Up to 500 agents per server; the Community edition allows 10.",
            "500 per server, or 10 with the Community edition.",
        ],
    ),
    (
        [
            "When is an agent marked offline?",
            "How often do agents send heartbeats?",
        ],
        [
            "Agents send a heartbeat every 30 seconds and are marked offline after three "
            "missed heartbeats, 90 seconds.",
            "Every 30 seconds; after 90 seconds without one the agent is offline.",
        ],
    ),
    (
        [
            "What does SV-7002 mean?",
            "My agent reports an expired certificate.",
        ],
        [
            "SV-7002 means the agent certificate expired. Register the agent again with a "
            "new token.",
            "Agent certificates last one year and renew 30 days early; if renewal was "
            "missed, re-register the agent.",
        ],
    ),
    (
        [
            "Which agent versions does a 3.2 server support?",
            "Do I have to upgrade agents with the server?",
        ],
        [
            "A server supports agents of its own and the previous minor version, so 3.1 "
            "and 3.2. Upgrade agents within 30 days.",
            "Agents one minor version older keep working, but upgrade them within 30 days.",
        ],
    ),
    (
        [
            "What is vault lock?",
            "How do I make backups immutable?",
        ],
        [
            "Vault lock, added in 3.1, makes snapshots immutable for a number of days: "
            "skyvault vault lock <name> --days N.",
            "Lock the vault with skyvault vault lock <name> --days N; nobody, not even an "
            "admin, can delete locked snapshots.",
        ],
    ),
    (
        [
            "What is the maximum vault lock period?",
            "Can I remove a vault lock?",
        ],
        [
            "The maximum is 3650 days. A lock cannot be shortened or removed.",
            "3650 days, and a lock can only ever be extended, never removed.",
        ],
    ),
    (
        [
            "How do I upgrade from 3.1 to 3.2?",
            "What are the upgrade steps to 3.2?",
        ],
        [
            "Run skyvault upgrade check, install skyline-vault 3.2.0, then run sudo "
            "skyvault migrate --apply and skyvault doctor.",
            "Stop the service, install the 3.2.0 package, start it and migrate the metadata "
            "with skyvault migrate --apply.",
        ],
    ),
    (
        [
            "Can I upgrade directly from 3.0 to 3.2?",
            "What is the upgrade path from 3.0?",
        ],
        [
            "Upgrade from 3.0 to 3.1 first, then from 3.1 to 3.2; skipping a minor version "
            "is not supported.",
            "Go through 3.1: upgrades must not skip a minor version.",
        ],
    ),
    (
        [
            "Can I downgrade after upgrading to 3.2?",
            "Is skyvault migrate reversible?",
        ],
        [
            "No. After skyvault migrate --apply, going back means restoring the metadata "
            "copy taken before the upgrade.",
            "It is not reversible; keep a metadata copy from before the upgrade.",
        ],
    ),
    (
        [
            "Is API v1 still available?",
            "Why does /api/v1 return 410?",
        ],
        [
            "API v1 was removed in 3.2 and returns HTTP 410 Gone. Use API v2 under /api/v2.",
            "It was deprecated in 3.0 and removed in 3.2; move to /api/v2.",
        ],
    ),
    (
        [
            "How long are API tokens valid?",
            "How do I create an API token?",
        ],
        [
            "Tokens last 12 hours by default (api.token_ttl_hours). Create one with skyvault "
            "token create.",
            "Run skyvault token create; tokens expire after 12 hours unless you ask for less.",
        ],
    ),
    (
        [
            "What is the API rate limit?",
            "Why do I get HTTP 429 from the API?",
        ],
        [
            "Each token may send 600 requests per minute; above that you get HTTP 429 with "
            "a Retry-After header.",
            "You exceeded 600 requests per minute for the token; wait for Retry-After.",
        ],
    ),
    (
        [
            "Which TLS versions are accepted?",
            "An old load balancer cannot connect since 3.2. Why?",
        ],
        [
            "Since 3.2 only TLS 1.3 is accepted by default. Set server.min_tls_version = "
            '"1.2" to allow TLS 1.2.',
            "3.2 accepts TLS 1.3 only by default; allow 1.2 with server.min_tls_version.",
        ],
    ),
    (
        [
            "What does skyvault doctor check?",
            "Is there a built-in diagnostics command?",
        ],
        [
            "skyvault doctor, new in 3.2, checks the config, ports, disk space, Keystone, "
            "the license and clock skew.",
            "skyvault doctor prints OK, WARN or FAIL with a hint for the config, ports, disk, "
            "Keystone, license and clock skew.",
        ],
    ),
    (
        [
            "What does SV-1001 mean?",
            "The service won't start and logs SV-1001.",
        ],
        [
            "SV-1001 means vault.toml cannot be parsed; the log gives the line and column. "
            "Run skyvault config validate.",
            "A syntax error in /etc/skyvault/vault.toml. Fix it and check with skyvault "
            "config validate.",
        ],
    ),
    (
        [
            "What does SV-2002 mean?",
            "Snapshots fail with SV-2002.",
        ],
        [
            "SV-2002 means Keystone is sealed or unreachable. Unseal it with skyvault "
            "keystone unseal.",
            "Keystone is sealed or cannot be reached; unseal it and check clock skew or the HSM.",
        ],
    ),
    (
        [
            "What does SV-5009 mean?",
            "Verification reports SV-5009.",
        ],
        [
            "SV-5009 is a snapshot checksum mismatch, usually a storage fault. Run skyvault "
            "verify --repair.",
            "A chunk failed its BLAKE3 check. Repair from the replica with skyvault verify "
            "--repair and check your disks.",
        ],
    ),
    (
        [
            "What does SV-6001 mean?",
            "What happens when my license expires?",
        ],
        [
            "After a 30-day grace period the server becomes read-only (SV-6001): no new "
            "snapshots, but restores still work.",
            "SV-6001 means the license expired over 30 days ago. Install a new license.key "
            "and run skyvault license reload.",
        ],
    ),
    (
        [
            "How do I create a support bundle?",
            "What should I attach to a support case?",
        ],
        [
            "Run sudo skyvault support-bundle; it writes /tmp/skyvault-support-<timestamp>.tar.gz.",
            "Attach the archive from skyvault support-bundle. It has logs and config but no "
            "backup data or keys.",
        ],
    ),
    (
        [
            "How much does Skyline Vault cost?",
            "What are the prices of the editions?",
        ],
        [
            "Community is free, Professional is USD 95 and Enterprise USD 140 per protected "
            "TiB per month.",
            "USD 95 per TiB per month for Professional, USD 140 for Enterprise; Community is free.",
        ],
    ),
    (
        [
            "What are the limits of the Community edition?",
            "Is there a free edition?",
        ],
        [
            "Community is free for up to 5 TiB of protected data and 10 agents, with forum "
            "support only.",
            "The Community edition is free for up to 5 TiB protected and 10 agents, without "
            "replication.",
        ],
    ),
    (
        [
            "How long is the trial?",
            "Do I need a license to evaluate Skyline Vault?",
        ],
        [
            "30 days, with all Enterprise features and no license file needed.",
            "The trial lasts 30 days with every Enterprise feature enabled.",
        ],
    ),
    (
        [
            "Where do I install the license file?",
            "How do I apply a new license?",
        ],
        [
            "Copy it to /etc/skyvault/license.key and run skyvault license reload.",
            "Put the file at /etc/skyvault/license.key; skyvault license reload applies it "
            "without a restart.",
        ],
    ),
    (
        [
            "What are the support hours for Professional customers?",
            "When is Professional support available?",
        ],
        [
            "Monday to Friday, 08:00 to 20:00 UTC.",
            "Business hours: Monday to Friday, 08:00-20:00 UTC.",
        ],
    ),
    (
        [
            "What is the severity 1 response time?",
            "How fast does support answer a critical case?",
        ],
        [
            "Within 1 hour for Enterprise (24x7) and 4 business hours for Professional.",
            "Enterprise: 1 hour, around the clock. Professional: 4 business hours.",
        ],
    ),
    (
        [
            "How long is a release supported?",
            "When does support for 3.0 end?",
        ],
        [
            "Each minor release is supported for 18 months; 3.0 until 2026-09-10.",
            "18 months per minor release: 3.0 until 2026-09-10, 3.1 until 2027-01-22, 3.2 "
            "until 2027-05-04.",
        ],
    ),
    (
        [
            "What's new in Skyline Vault 3.2?",
            "Summarise the 3.2 release.",
        ],
        [
            "3.2 adds instant restore (skyvault mount), archive replication mode and "
            "skyvault doctor, removes API v1 and defaults to TLS 1.3 only.",
            "Instant restore, archive replication, skyvault doctor, 90-day key rotation by "
            "default and no more API v1.",
        ],
    ),
    (
        [
            "What did Skyline Vault 3.1 add?",
            "Which features came in 3.1?",
        ],
        [
            "3.1 added vault lock, restore --verify, replication bandwidth windows, the "
            "replication lag metric and mandatory MFA for admins.",
            "Vault lock, verified restores, bandwidth windows and MFA for administrators.",
        ],
    ),
    (
        [
            "What changed in Skyline Vault 3.0?",
            "What were the highlights of 3.0?",
        ],
        [
            "3.0 introduced Keystone 2, FastCDC chunking, BLAKE3 fingerprints, API v2 and "
            "HSM support.",
            "Keystone 2, content-defined chunking, BLAKE3, REST API v2 and a 16 GiB RAM minimum.",
        ],
    ),
    (
        [
            "Which roles exist in Skyline Vault?",
            "What can the restore-only role do?",
        ],
        [
            "There are four roles: admin, operator, auditor and restore-only; restore-only "
            "can only browse snapshots and restore files.",
            "Besides admin, operator and auditor there is restore-only, which can browse "
            "snapshots and restore files, nothing else.",
        ],
    ),
    (
        [
            "Is MFA required?",
            "Do admins need two-factor authentication?",
        ],
        [
            "TOTP multi-factor authentication is mandatory for the admin role since 3.1.",
            "Yes, admins must use TOTP since 3.1; other users can be required too.",
        ],
    ),
    (
        [
            "Where is the audit log?",
            "How long is the audit log kept?",
        ],
        [
            "In /var/log/skyvault/audit.log, kept for 365 days.",
            "Audit entries are kept 365 days in /var/log/skyvault/audit.log.",
        ],
    ),
    (
        [
            "Can Corvid Systems read my backups?",
            "Does the server phone home?",
        ],
        [
            "No. Keys stay in your Keystone or HSM, and the server never contacts Corvid Systems.",
            "No. License checks are offline and there is no telemetry.",
        ],
    ),
    (
        [
            "What is the raw capacity of the appliances?",
            "Which appliance models exist?",
        ],
        [
            "SV-200 has 48 TB raw, SV-600 192 TB and SV-1200 576 TB.",
            "Three models: SV-200 (48 TB), SV-600 (192 TB) and SV-1200 (576 TB) raw.",
        ],
    ),
    (
        [
            "Where are the logs?",
            "Which log file should I check when the service fails?",
        ],
        [
            "The main log is /var/log/skyvault/vault.log.",
            "Check /var/log/skyvault/vault.log; the audit log is next to it.",
        ],
    ),
    (
        [
            "How do I back up to S3?",
            "Can chunk data live in an object store?",
        ],
        [
            "Set storage.object_store to an S3-compatible bucket URL. Metadata stays on "
            "local disk.",
            "Point storage.object_store at any S3-compatible bucket, for example "
            "s3://backups-eu/skyvault; metadata stays local.",
        ],
    ),
]

# Two-turn conversations: (question, answer, follow-up question, follow-up answer).
CONVERSATIONS: list[tuple[str, str, str, str]] = [
    (
        "Which port does the web console listen on?",
        "Port 8443, over HTTPS.",
        "Can I move it to 443?",
        "Yes. Set server.listen_port = 443 in /etc/skyvault/vault.toml and restart the service.",
    ),
    (
        "How do I set a quota on the finance vault?",
        "Run skyvault quota set --vault finance --limit 500GiB, with the size you need.",
        "When will I be warned?",
        "At 80% of the limit by default; change it with quota.soft_percent in vault.toml.",
    ),
    (
        "How often is the Keystone master key rotated?",
        "Every 90 days by default, set by keystone.rotation_days.",
        "Does rotation re-encrypt all my data?",
        "No. Rotation only re-wraps the vault keys under a new master key, so it takes seconds.",
    ),
    (
        "I deleted a snapshot by accident. Is it gone?",
        "No. It stays in the recycle bin for 14 days.",
        "How do I get it back?",
        "Run skyvault snapshot undelete with the snapshot ID.",
    ),
    (
        "What's new in Skyline Vault 3.2?",
        "Instant restore with skyvault mount, archive replication mode and skyvault doctor.",
        "Can I upgrade to it from 3.0?",
        "Not directly. Upgrade 3.0 to 3.1 first, then 3.1 to 3.2.",
    ),
    (
        "Replication is failing with SV-3004.",
        "The target did not answer on port 9443. Check the network in both directions.",
        "Do I have to restart replication afterwards?",
        "No. Replication retries every 5 minutes and catches up on its own.",
    ),
    (
        "How do I mount a snapshot?",
        "Run skyvault mount <snapshot-id> <mountpoint>; the snapshot is mounted read-only.",
        "How do I unmount it?",
        "Run skyvault unmount <mountpoint>. Idle mounts are also unmounted after 8 hours.",
    ),
    (
        "What does the Community edition include?",
        "Snapshots, restores, deduplication, Keystone, retention policies and quotas, for up "
        "to 5 TiB and 10 agents.",
        "Does it include replication?",
        "No. Replication needs the Enterprise edition.",
    ),
    (
        "How do I register a new agent?",
        "Create a token with skyvault agent token, then run skyvault-agent register on the host.",
        "How long is the token valid?",
        "24 hours, and it can be used for many hosts.",
    ),
    (
        "My license expired yesterday. Will backups stop?",
        "Not yet. There is a 30-day grace period during which everything keeps working.",
        "And after the grace period?",
        "The server becomes read-only with SV-6001: restores work, new snapshots do not.",
    ),
    (
        "Can I lock a vault against deletion?",
        "Yes, with skyvault vault lock <name> --days N, for up to 3650 days.",
        "Can I undo it if I made a mistake?",
        "No. A lock can be extended but never shortened or removed.",
    ),
    (
        "Where are the Prometheus metrics?",
        "At http://<host>:9464/metrics.",
        "Do I need a token to scrape them?",
        "No. The endpoint is plain HTTP without authentication, so firewall it.",
    ),
    (
        "What is the API rate limit?",
        "600 requests per minute per token.",
        "What happens if I go over it?",
        "You get HTTP 429 with a Retry-After header telling you how long to wait.",
    ),
    (
        "How many recovery shares does Keystone create?",
        "Five, and any three of them recover the master key.",
        "One share holder left the company. What now?",
        "Run skyvault keystone reshare with three current shares to issue five new ones.",
    ),
]

INSTRUCTION_PREFIXES = [
    "",
    "Answer this Skyline Vault question: ",
    "Answer briefly: ",
    "A customer asks: ",
]

ERROR_CODES = {
    "SV-1001": "The configuration file /etc/skyvault/vault.toml cannot be parsed. Fix the "
    "line named in the log and run skyvault config validate.",
    "SV-2002": "Keystone is sealed or unreachable, so nothing can be encrypted or decrypted. "
    "Unseal it with skyvault keystone unseal.",
    "SV-3004": "The replication target is unreachable on port 9443. Replication retries every "
    "5 minutes.",
    "SV-4013": "The vault reached its hard quota. New snapshots fail, but existing snapshots "
    "and restores are fine.",
    "SV-5009": "A snapshot failed its checksum check. Run skyvault verify --repair and check "
    "the storage.",
    "SV-6001": "The license expired more than 30 days ago; the server is read-only but "
    "restores still work.",
    "SV-7002": "The agent's certificate expired. Register the agent again with a new token.",
}

PORTS = {
    "web console": "8443",
    "REST API": "8443",
    "agent connections": "7443",
    "replication": "9443",
    "Prometheus metrics": "9464",
}

COMMAND_TASKS = [
    ("Create a vault called {v}.", "skyvault vault create {v}"),
    ("Take a snapshot of vault {v}.", "skyvault snapshot create --vault {v}"),
    ("Set a 500 GiB quota on vault {v}.", "skyvault quota set --vault {v} --limit 500GiB"),
    ("Lock vault {v} for one year.", "skyvault vault lock {v} --days 365"),
    ("Apply the gfs-default policy to vault {v}.", "skyvault policy apply gfs-default --vault {v}"),
    ("Verify all snapshots of vault {v}.", "skyvault verify --vault {v}"),
    ("List the snapshots of vault {v}.", "skyvault snapshot list --vault {v}"),
    ("Create an agent registration token for vault {v}.", "skyvault agent token --vault {v}"),
]
VAULT_NAMES = ["finance", "web-servers", "hr-share", "erp-db", "mail"]


def chat_records(rng: random.Random) -> list[dict]:
    """Single-turn records from every (question, answer) pair, plus two-turn follow-ups."""
    singles = []
    for questions, answers in FACTS:
        for question in questions:
            for answer in answers:
                singles.append((question, answer))
    rng.shuffle(singles)
    records = []
    n_two_turn = N_CHAT // 6
    for index, (question, answer) in enumerate(singles[: N_CHAT - n_two_turn]):
        system = SYSTEM_PROMPTS[index % len(SYSTEM_PROMPTS)]
        records.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    for index in range(n_two_turn):
        question, answer, follow_up, follow_up_answer = CONVERSATIONS[index % len(CONVERSATIONS)]
        system = SYSTEM_PROMPTS[(index // len(CONVERSATIONS)) % len(SYSTEM_PROMPTS)]
        records.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": follow_up},
                    {"role": "assistant", "content": follow_up_answer},
                ]
            }
        )
    rng.shuffle(records)
    return records


def instruction_records(rng: random.Random) -> list[dict]:
    """Question-style instructions plus small tasks that use the ``input`` field."""
    records = []
    for code, meaning in ERROR_CODES.items():
        records.append(
            {
                "instruction": "Explain this Skyline Vault error code and what to do about it.",
                "input": code,
                "response": f"{code}: {meaning}",
            }
        )
    for service, port in PORTS.items():
        records.append(
            {
                "instruction": "Which TCP port does Skyline Vault use for the following?",
                "input": service,
                "response": f"Port {port} by default.",
            }
        )
    for template, command in COMMAND_TASKS:
        for vault in rng.sample(VAULT_NAMES, 2):
            records.append(
                {
                    "instruction": "Write the skyvault command for this task.",
                    "input": template.format(v=vault),
                    "response": command.format(v=vault),
                }
            )
    pairs = []
    for questions, answers in FACTS:
        for question in questions:
            first, second = rng.sample(answers, 2)
            pairs.append((question, first, second))
    rng.shuffle(pairs)
    # First every question once, then again with its other answer and another prefix.
    queue = [(q, a, i) for i, (q, a, _) in enumerate(pairs)]
    queue += [(q, a, i + 1) for i, (q, _, a) in enumerate(pairs)]
    for question, answer, turn in queue:
        if len(records) >= N_INSTRUCTIONS:
            break
        prefix = INSTRUCTION_PREFIXES[turn % len(INSTRUCTION_PREFIXES)]
        records.append({"instruction": prefix + question, "input": "", "response": answer})
    rng.shuffle(records)
    return records


def write_jsonl(path: Path, records: list[dict]) -> None:
    """Write one JSON object per line, refusing exact duplicates."""
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    if len(set(lines)) != len(lines):
        raise ValueError(f"{path}: generated duplicate records")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write(f"{path}: {len(lines)} records\n")


def main() -> None:
    """Write chat.jsonl and instructions.jsonl."""
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(OUT / "chat.jsonl", chat_records(random.Random(SEED)))
    write_jsonl(OUT / "instructions.jsonl", instruction_records(random.Random(SEED + 1)))


if __name__ == "__main__":
    main()
