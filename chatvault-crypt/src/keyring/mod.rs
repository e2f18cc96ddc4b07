//! The keyring: per-owner data keys, created on first use, wrapped by a
//! [`KeyProvider`], kept in a key store (a [`MessagesBackend`]), cached unwrapped for a
//! while; rotation, shredding, rewrapping.

mod store;

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatvault_core::backend::{ListOptions, MessageUpdate, MessagesBackend};
use chatvault_core::{Error, Result, UserId};

use crate::cipher::{Algorithm, DataKey, DerivedKeys};
use crate::format::{Header, KeyRef, Owner, corrupt, is_key_conversation};
use crate::provider::{KeyProvider, WrapContext};
use store::{Wrapped, append_version, key_part, read_versions};

/// How many owners' keys the cache holds.
const CACHE_OWNERS: usize = 10_000;
/// The owner name the names key is wrapped for.
const NAMES_OWNER: &str = "~names";

/// Per-owner data keys: what [`EncryptedMessages`](crate::EncryptedMessages) and
/// [`EncryptedFiles`](crate::EncryptedFiles) seal with. Cheap to clone (one shared state):
/// give the same keyring to both wrappers.
///
/// - **Data keys.** Each owner (a conversation's `user_id`; conversations without one
///   share the vault-wide key) gets a random 256-bit data key on the first write, wrapped
///   by the [`KeyProvider`] and stored in the *key store*: a conversation of a
///   [`MessagesBackend`] per owner (id `chatvault-crypt.keys.<digest>`, no `user_id`),
///   one message per key version. The key store may be the wrapped backend itself or,
///   better for [crypto-shredding](Self::shred), a separate one (see the crate docs).
/// - **Versions.** New data is sealed with the owner's newest version; every ciphertext
///   names its version, so older data stays readable after a [`rotate`](Self::rotate).
/// - **Cache.** Unwrapped keys are kept in memory for [`with_cache_ttl`](Self::with_cache_ttl)
///   (5 minutes by default) for up to 10,000 owners, so the provider is called once per
///   owner and period, not per message. A shred or rotation done by another process is
///   seen here when the entry expires.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MessagesBackend>,
    provider: Arc<dyn KeyProvider>,
    previous: Vec<Arc<dyn KeyProvider>>,
    algorithm: Algorithm,
    ttl: Duration,
    cache: Mutex<lru::LruCache<KeyRef, Entry>>,
    /// Held while a data key is created, so that tasks of this process create one each.
    creating: tokio::sync::Mutex<()>,
}

/// One owner's stored versions and those unwrapped so far.
struct Entry {
    loaded: Instant,
    wrapped: Vec<Wrapped>,
    open: HashMap<u32, Arc<DerivedKeys>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("store", &self.inner.store)
            .field("provider", &self.inner.provider)
            .field("algorithm", &self.inner.algorithm)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

/// What [`Keyring::rewrap`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapReport {
    /// Key versions that were wrapped by another provider and are now wrapped by the
    /// current one.
    pub rewrapped: u64,
    /// Key versions already wrapped by the current provider.
    pub unchanged: u64,
}

impl Keyring {
    /// A keyring whose wrapped keys live in `store`, wrapped by `provider`; new data is
    /// sealed with [`Algorithm::default`].
    pub fn new(store: Arc<dyn MessagesBackend>, provider: impl KeyProvider) -> Self {
        Keyring {
            inner: Arc::new(Inner {
                store,
                provider: Arc::new(provider),
                previous: Vec::new(),
                algorithm: Algorithm::default(),
                ttl: Duration::from_secs(300),
                cache: Mutex::new(lru::LruCache::new(
                    NonZeroUsize::new(CACHE_OWNERS).unwrap_or(NonZeroUsize::MIN),
                )),
                creating: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => tracing::warn!("a keyring setting was changed after the keyring was shared"),
        }
        self
    }

    /// Seals new data with `algorithm` (data sealed with the other stays readable).
    /// Call before giving the keyring to a wrapper.
    pub fn with_algorithm(self, algorithm: Algorithm) -> Self {
        self.edit(|i| i.algorithm = algorithm)
    }

    /// Keeps unwrapped keys for `ttl` (0: ask the key store and provider every time).
    pub fn with_cache_ttl(self, ttl: Duration) -> Self {
        self.edit(|i| i.ttl = ttl)
    }

    /// Also unwraps keys that `provider` wrapped (after a change of key-encryption key,
    /// until [`rewrap`](Self::rewrap) has run).
    pub fn with_previous_provider(self, provider: impl KeyProvider) -> Self {
        self.edit(|i| i.previous.push(Arc::new(provider)))
    }

    /// The algorithm new data is sealed with.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn MessagesBackend> {
        &self.inner.store
    }

    /// The newest version of the owner's data key (`None` for the vault-wide key), or
    /// `None` when it has none (never written, or shredded).
    pub async fn current_version(&self, owner: Option<&UserId>) -> Result<Option<u32>> {
        let key_ref = Owner::of(owner).key_ref();
        self.refresh(key_ref).await?;
        Ok(self.with_entry(key_ref, |e| e.and_then(newest)))
    }

    /// Starts a new version of the owner's data key: new data is sealed with it from now
    /// on (in this process at once; in others when their cache expires), older data stays
    /// readable with the older versions. Returns the new version.
    ///
    /// To stop using an old version entirely (a key thought exposed), rotate, then
    /// [`reencrypt`](crate::reencrypt) the owner's data.
    pub async fn rotate(&self, owner: Option<&UserId>) -> Result<u32> {
        let owner = Owner::of(owner);
        let version = {
            let _turn = self.inner.creating.lock().await;
            self.create_version(owner.key_ref(), owner.as_str()).await?
        };
        self.refresh(owner.key_ref()).await?;
        Ok(version)
    }

    /// **Crypto-shredding**: destroys every version of the owner's data key in the key
    /// store, so that everything sealed for that owner (in this store, its backups and
    /// raw exports) can never be opened again, once no backup of the *key store* holds
    /// them. Returns whether there was a key.
    ///
    /// This process forgets the key at once; others when their cache expires. The
    /// owner's ciphertexts stay where they are (erase them to reclaim the space); reads of
    /// them fail with [`Error::Corrupt`], listings show their titles as `None`, deleting
    /// them works. A later write for the owner starts a new key.
    pub async fn shred(&self, owner: Option<&UserId>) -> Result<bool> {
        let key_ref = Owner::of(owner).key_ref();
        let id = key_ref.conversation()?;
        let store = self.inner.store.as_ref();
        store.begin_delete(&id).await?;
        let existed = store.delete(&id).await?;
        self.lock().pop(&key_ref);
        Ok(existed)
    }

    /// Wraps every stored key version with the current provider: after a change of
    /// key-encryption key (the old provider given with
    /// [`with_previous_provider`](Self::with_previous_provider)), so that the old one can
    /// be retired. Data is not re-encrypted (its data keys do not change).
    ///
    /// Needs a key store that lists every conversation
    /// ([`MessagesCapabilities::list_all`](chatvault_core::backend::MessagesCapabilities)).
    pub async fn rewrap(&self) -> Result<RewrapReport> {
        let store = self.inner.store.as_ref();
        let current = self.inner.provider.id();
        let mut report = RewrapReport::default();
        let mut options = ListOptions::default().include_archived(true);
        loop {
            let page = store.list_conversations(None, &options).await?;
            for summary in page.items.iter().filter(|s| is_key_conversation(&s.id)) {
                let owner = owner_of(store, &summary.id).await?;
                let versions = read_versions(store, &summary.id).await?.unwrap_or_default();
                for w in versions.into_iter().filter(|w| w.valid) {
                    if w.provider == current {
                        report.unchanged += 1;
                        continue;
                    }
                    let context = WrapContext {
                        owner: &owner,
                        version: w.version,
                    };
                    let key = self.unwrap(&w, &context).await?;
                    let wrapped = self.inner.provider.wrap(&key, &context).await?;
                    let update = MessageUpdate {
                        parts: Some(vec![key_part(&current, &owner, w.version, &wrapped)]),
                        ..Default::default()
                    };
                    store
                        .update_message(&summary.id, &w.message_id, w.revision, &update)
                        .await?;
                    report.rewrapped += 1;
                }
            }
            match page.next_cursor {
                Some(cursor) => options = options.cursor(&cursor)?,
                None => return Ok(report),
            }
        }
    }

    /// The header and keys to seal new data of `owner` with (creating its first key).
    pub(crate) async fn for_writing(&self, owner: &Owner) -> Result<(Header, Arc<DerivedKeys>)> {
        let key_ref = owner.key_ref();
        let fresh = |e: Option<&mut Entry>| {
            e.filter(|e| e.loaded.elapsed() < self.inner.ttl)
                .and_then(newest)
        };
        let mut version = self.with_entry(key_ref, fresh);
        if version.is_none() {
            self.refresh(key_ref).await?;
            version = self.with_entry(key_ref, |e| e.and_then(newest));
        }
        let version = match version {
            Some(v) => v,
            None => self.create_first(key_ref, owner.as_str()).await?,
        };
        let header = Header {
            alg: self.inner.algorithm,
            key_ref,
            version,
        };
        let keys = self
            .open_version(key_ref, version, owner.as_str())
            .await?
            .ok_or_else(|| {
                corrupt(
                    owner.as_str(),
                    "the data key just written is not in the key store",
                )
            })?;
        Ok((header, keys))
    }

    /// The keys a header names; `None` when the key store does not hold that version
    /// (shredded, or never written).
    pub(crate) async fn for_reading(&self, header: &Header) -> Result<Option<Arc<DerivedKeys>>> {
        self.open_version(header.key_ref, header.version, "").await
    }

    /// The keys that name files in storage keys: one vault-wide key, created on first use,
    /// never rotated or shredded (so that every stored object can always be found, and
    /// deleted, whatever happened to its owner's data key).
    pub(crate) async fn names(&self) -> Result<Arc<DerivedKeys>> {
        let names = Owner::raw(NAMES_OWNER);
        let ttl = self.inner.ttl;
        // The first valid version, forever (a concurrent first use may store two).
        let first = |e: Option<&mut Entry>| {
            e.filter(|e| e.loaded.elapsed() < ttl)
                .and_then(|e| e.wrapped.iter().find(|w| w.valid).map(|w| w.version))
        };
        let mut version = self.with_entry(names.key_ref(), first);
        if version.is_none() {
            self.refresh(names.key_ref()).await?;
            version = self.with_entry(names.key_ref(), first);
        }
        let version = match version {
            Some(v) => v,
            None => {
                self.for_writing(&names).await?;
                self.with_entry(names.key_ref(), first)
                    .ok_or_else(|| corrupt("key store", "the names key is missing"))?
            }
        };
        self.open_version(names.key_ref(), version, NAMES_OWNER)
            .await?
            .ok_or_else(|| corrupt("key store", "the names key is missing"))
    }

    async fn open_version(
        &self,
        key_ref: KeyRef,
        version: u32,
        owner_hint: &str,
    ) -> Result<Option<Arc<DerivedKeys>>> {
        let ttl = self.inner.ttl;
        let cached = self.with_entry(key_ref, |e| {
            e.filter(|e| e.loaded.elapsed() < ttl)
                .and_then(|e| e.open.get(&version).cloned())
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let find = |e: Option<&mut Entry>| {
            e.filter(|e| e.loaded.elapsed() < ttl).and_then(|e| {
                e.wrapped
                    .iter()
                    .find(|w| w.version == version && w.valid)
                    .cloned()
            })
        };
        let mut wrapped = self.with_entry(key_ref, find);
        if wrapped.is_none() {
            self.refresh(key_ref).await?;
            wrapped = self.with_entry(key_ref, find);
        }
        let Some(wrapped) = wrapped else {
            return Ok(None);
        };
        let owner = match owner_hint {
            "" => owner_of(self.inner.store.as_ref(), &key_ref.conversation()?).await?,
            hint => hint.to_owned(),
        };
        let context = WrapContext {
            owner: &owner,
            version,
        };
        let keys = Arc::new(DerivedKeys::new(&self.unwrap(&wrapped, &context).await?)?);
        self.with_entry(key_ref, |e| {
            if let Some(e) = e {
                e.open.insert(version, Arc::clone(&keys));
            }
        });
        Ok(Some(keys))
    }

    async fn unwrap(&self, w: &Wrapped, context: &WrapContext<'_>) -> Result<DataKey> {
        let providers = std::iter::once(&self.inner.provider).chain(&self.inner.previous);
        for p in providers {
            if p.id() == w.provider {
                return p.unwrap(&w.bytes, context).await;
            }
        }
        Err(Error::permission_denied(
            "chatvault-crypt",
            format!(
                "data key {} v{} is wrapped by {:?}, which this keyring has no provider for",
                context.owner, context.version, w.provider
            ),
        ))
    }

    /// The owner's first key: one task of this process creates it while the others wait,
    /// then all use whichever version the key store holds (another process may have
    /// stored one first).
    async fn create_first(&self, key_ref: KeyRef, owner: &str) -> Result<u32> {
        let _turn = self.inner.creating.lock().await;
        self.refresh(key_ref).await?;
        if let Some(v) = self.with_entry(key_ref, |e| e.and_then(newest)) {
            return Ok(v);
        }
        match self.create_version(key_ref, owner).await {
            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        self.refresh(key_ref).await?;
        self.with_entry(key_ref, |e| e.and_then(newest))
            .ok_or_else(|| corrupt(owner, "the data key just written is not in the key store"))
    }

    /// Stores the next version of the owner's key. Version `n` is the message with id
    /// `data-key-n`, so of two writers storing the same version one fails with
    /// [`Error::AlreadyExists`] and nothing of it is stored; its `seq` is `n`.
    async fn create_version(&self, key_ref: KeyRef, owner: &str) -> Result<u32> {
        let id = key_ref.conversation()?;
        let key = DataKey::generate()?;
        let next = read_versions(self.inner.store.as_ref(), &id)
            .await?
            .map_or(1, |v| v.last().map_or(1, |w| w.version + 1));
        let context = WrapContext {
            owner,
            version: next,
        };
        let wrapped = self.inner.provider.wrap(&key, &context).await?;
        let part = key_part(&self.inner.provider.id(), owner, next, &wrapped);
        let version = append_version(self.inner.store.as_ref(), &id, owner, next, part).await?;
        if version != next {
            // Only a store that lost the ids' order gets here: the version is stored
            // under a seq it was not wrapped for, and skipped as invalid.
            return Err(Error::Conflict {
                message: format!("data key {owner} v{next} was stored at seq {version}"),
            });
        }
        Ok(version)
    }

    async fn refresh(&self, key_ref: KeyRef) -> Result<()> {
        let id = key_ref.conversation()?;
        let wrapped = read_versions(self.inner.store.as_ref(), &id).await?;
        let mut cache = self.lock();
        match wrapped {
            Some(wrapped) => {
                let open = cache.pop(&key_ref).map(|e| e.open).unwrap_or_default();
                let open = open
                    .into_iter()
                    .filter(|(v, _)| wrapped.iter().any(|w| w.version == *v))
                    .collect();
                cache.put(
                    key_ref,
                    Entry {
                        loaded: Instant::now(),
                        wrapped,
                        open,
                    },
                );
            }
            None => {
                cache.pop(&key_ref);
            }
        }
        Ok(())
    }

    fn with_entry<T>(&self, key_ref: KeyRef, f: impl FnOnce(Option<&mut Entry>) -> T) -> T {
        f(self.lock().get_mut(&key_ref))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<KeyRef, Entry>> {
        // A panic while holding the lock leaves a cache that is still consistent.
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The newest version of an entry that was wrapped for the version it is stored at (two
/// writers creating a version at once: the loser's is stored under the next `seq`, which
/// it was not wrapped for; it is skipped, and the loser retries).
fn newest(e: &mut Entry) -> Option<u32> {
    e.wrapped.iter().rev().find(|w| w.valid).map(|w| w.version)
}

/// The owner a key conversation is for (kept in its record's metadata).
async fn owner_of(
    store: &dyn MessagesBackend,
    id: &chatvault_core::ConversationId,
) -> Result<String> {
    let head = store.head(id).await?;
    head.as_ref()
        .and_then(|h| h.record.metadata.get("chatvault_crypt"))
        .and_then(|m| m.get("owner"))
        .and_then(|o| o.as_str())
        .map(str::to_owned)
        .ok_or_else(|| corrupt(id.as_str(), "a key store conversation names no owner"))
}
