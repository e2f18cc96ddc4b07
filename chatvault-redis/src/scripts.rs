//! The Lua scripts: each runs atomically on the server, touching one conversation's keys
//! (one hash slot), and holds no rule of the model. What to write is decided in Rust by
//! the core's shared rules; a script only checks that the conversation is still at the
//! write token the decision was made from, and writes what it is given.

use std::sync::LazyLock;

use redis::Script;

/// Reads a conversation for a decision: its write token, record, attachments and format,
/// and the stored messages of the ids in `ARGV` (`''` for none).
///
/// `KEYS`: conversation, messages, message ids. Returns `{'gone'}` when there is no such
/// live conversation, else `{'ok', token, record, files, format, message...}`.
pub(crate) static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local st = redis.call('HMGET', KEYS[1], 'w', 'del', 'rec', 'files', 'fmt')
if not st[1] or st[2] then return {'gone'} end
local out = {'ok', st[1], st[3] or '', st[4] or '', st[5] or ''}
for i = 1, #ARGV do
  local seq = redis.call('HGET', KEYS[3], ARGV[i])
  out[#out + 1] = (seq and redis.call('HGET', KEYS[2], seq)) or ''
end
return out
",
    )
});

/// Writes a decision made at write token `ARGV[1]`, replacing the token with `ARGV[2]`.
///
/// `KEYS`: conversation, messages, message ids, then the listing indexes to move (only
/// on one server: in a cluster they live in other slots and the caller moves them).
/// `ARGV`: expected token, new token, record JSON (`''`: unchanged), files JSON (`''`:
/// unchanged), listing score (`''`: unchanged), conversation id, the keys' deadline
/// (milliseconds since the epoch for `PEXPIREAT`; `''`: no expiry, `PERSIST`), `g` guard
/// ids (message ids that must not be stored yet), `g` ids, `k` messages to write, then `k`
/// triples (seq, JSON, id to index or `''`). A write sets the deadline of the
/// conversation's three keys with what it writes, so none is ever left with another.
///
/// Returns `{'gone'}` (no such live conversation), `{'done'}` (the token is already the
/// new one: this very write was applied, and its answer lost), `{'stale', token, record,
/// files}` (another write came first: decide again from these), `{'replay', token,
/// record, message...}` (a guard id is stored: the stored messages of every guard id, `''`
/// for none; nothing written) or `{'ok'}`.
pub(crate) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local st = redis.call('HMGET', KEYS[1], 'w', 'del')
if not st[1] or st[2] then return {'gone'} end
if st[1] == ARGV[2] then return {'done'} end
if st[1] ~= ARGV[1] then
  local now = redis.call('HMGET', KEYS[1], 'rec', 'files')
  return {'stale', st[1], now[1] or '', now[2] or ''}
end
local g = tonumber(ARGV[8])
local hit = false
local found = {}
for i = 1, g do
  local seq = redis.call('HGET', KEYS[3], ARGV[8 + i])
  if seq then
    hit = true
    found[i] = redis.call('HGET', KEYS[2], seq) or ''
  else
    found[i] = ''
  end
end
if hit then
  local out = {'replay', st[1], redis.call('HGET', KEYS[1], 'rec') or ''}
  for i = 1, g do out[#out + 1] = found[i] end
  return out
end
local at = 9 + g
local k = tonumber(ARGV[at])
for i = 0, k - 1 do
  local seq = ARGV[at + 1 + 3 * i]
  redis.call('HSET', KEYS[2], seq, ARGV[at + 2 + 3 * i])
  local id = ARGV[at + 3 + 3 * i]
  if id ~= '' then redis.call('HSET', KEYS[3], id, seq) end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'rec', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'files', ARGV[4]) end
redis.call('HSET', KEYS[1], 'w', ARGV[2])
for i = 1, 3 do
  if ARGV[7] == '' then
    redis.call('PERSIST', KEYS[i])
  else
    redis.call('PEXPIREAT', KEYS[i], ARGV[7])
  end
end
if ARGV[5] ~= '' then
  for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 'GT', ARGV[5], ARGV[6]) end
end
return {'ok'}
",
    )
});

/// Creates a conversation unless its id is taken.
///
/// `KEYS`: conversation, then the listing indexes to add it to (one server only).
/// `ARGV`: token, record JSON, format, listing score, conversation id, the key's deadline
/// (as for [`COMMIT`]). Returns `'ok'` (created, or this very create was applied before
/// and its answer lost) or `'exists'`.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local w = redis.call('HGET', KEYS[1], 'w')
if w then
  if w == ARGV[1] then return 'ok' end
  return 'exists'
end
redis.call('HSET', KEYS[1], 'fmt', ARGV[3], 'rec', ARGV[2], 'files', '[]', 'w', ARGV[1])
if ARGV[6] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[6]) end
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], 'NX', ARGV[4], ARGV[5]) end
return 'ok'
",
    )
});

/// Marks a conversation as being deleted and returns its attachments' JSON (`false`
/// when there is no such conversation). `KEYS`: conversation. `ARGV`: a new token (so a
/// decision made before the mark is never written).
pub(crate) static BEGIN_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'del', '1', 'w', ARGV[1])
return redis.call('HGET', KEYS[1], 'files') or '[]'
",
    )
});

/// Removes listing entries whose conversation is gone (expired or deleted), on one server,
/// where the check and the removal are one step: no create or write can come between.
///
/// `KEYS`: the listing index, then the conversation hash of each entry. `ARGV`: the
/// entries' members (conversation ids), in the same order. Returns how many went.
pub(crate) static PRUNE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    n = n + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return n
",
    )
});

/// Removes one listing entry if it still has the score it was read with (in a cluster,
/// where the conversation lives in another slot and the caller checks it after).
///
/// `KEYS`: the listing index. `ARGV`: member, score. Returns 1 when it went, else 0.
pub(crate) static PRUNE_ENTRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
",
    )
});

/// Adds an entry to a live reply's stream, keeps the stream `ARGV[1]` milliseconds after
/// it, or less: never past its conversation's keys' deadline, when they have one.
///
/// `KEYS`: the stream, the conversation hash (same slot). `ARGV`: time to keep (ms), then
/// the entry's field/value pairs. Returns the entry's id.
pub(crate) static REPLY_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
local keep = ARGV[1]
local left = redis.call('PTTL', KEYS[2])
if left > 0 and left < tonumber(keep) then keep = string.format('%d', left) end
redis.call('PEXPIRE', KEYS[1], keep)
return id
",
    )
});
