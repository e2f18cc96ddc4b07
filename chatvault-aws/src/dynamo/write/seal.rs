//! The layout's own writes, which appends and message updates make before theirs when
//! they must: sealing the tail into chunk items on its own, and giving a conversation
//! written by 0.1 its id markers.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chatvault_core::backend::{ConversationId, Result};

use super::actions::{ConvUpdate, Op, base_size, chunk_exists, too_large_conversation};
use super::outcome::Written;
use super::plan::{Sealing, plan_seal_tail};
use crate::dynamo::layout::item::*;
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;

impl Table {
    /// The actions of `sealing`, in its order (the update, the chunks, the markers), the
    /// conversation as it will be, and the transaction's size.
    pub(crate) fn sealing_actions(
        &self,
        id: &ConversationId,
        sealing: Sealing,
    ) -> Result<(Vec<TransactWriteItem>, Seen, u64)> {
        let mut actions = Vec::with_capacity(sealing.actions());
        actions.push(self.update_action(id, sealing.update)?);
        for chunk in sealing.chunks {
            actions.push(self.put_new(chunk)?);
        }
        for marker in sealing.markers {
            actions.push(self.put(marker)?);
        }
        Ok((actions, sealing.after, sealing.total))
    }

    /// Seals the tail on its own (a write of the layout only: the record moves to a new
    /// version and nothing else), for an append or a message update that cannot do it in
    /// its own transaction. Returns the conversation as it is after.
    pub(crate) async fn seal_tail(&self, op: Op<'_>, current: &Seen, attempt: u32) -> Result<Seen> {
        let id = op.id;
        let (actions, after, total) = self.sealing_actions(id, plan_seal_tail(id, current)?)?;
        let written = self
            .conditional_write(
                op,
                actions,
                || too_large_conversation(id, total),
                // Nothing the caller asked for was written: let it try again.
                || async { Ok(false) },
            )
            .await?;
        match written {
            Written::Done => {
                self.seen.remember(after.clone());
                Ok(after)
            }
            Written::Moved(item) => self.retry_from(id, item, attempt).await,
            Written::Other => Err(chunk_exists(id)),
            Written::Conflicted => self.retry_from(id, None, attempt).await,
        }
    }

    /// Gives the message items of a conversation written by 0.1 their id markers, and the
    /// conversation its greatest sealed id and format 2, before its first write of
    /// messages: one read of every message item's id, once per conversation. Returns the
    /// conversation as it is after.
    pub(crate) async fn index_legacy(&self, op: Op<'_>, mut current: Seen) -> Result<Seen> {
        let id = op.id;
        for attempt in 0..self.max_write_attempts {
            if !current.legacy {
                return Ok(current);
            }
            let (markers, max) = self.legacy_markers(id).await?;
            self.batch_write(markers).await?;
            let mut set = vec![(FORMAT, n(FORMAT_VERSION))];
            if let Some(max) = &max {
                set.push((SEALED_MAX_ID, s(max.as_str())));
            }
            let request = self.update_request(
                id,
                ConvUpdate::writing(
                    &current.record,
                    current.record.version,
                    vec![(FORMAT, n(1))],
                    set,
                    None,
                )?,
            );
            let size = current.item_size() + 64;
            let written = Self::single_write(
                op,
                request.send().await,
                || too_large_conversation(id, size),
                || async {
                    Ok(self
                        .read_item(id)
                        .await?
                        .is_some_and(|item| get_n(&item, FORMAT).is_ok_and(|f| f >= 2)))
                },
            )
            .await?;
            current = match written {
                Written::Done => {
                    let mut after = current;
                    after.legacy = false;
                    after.base_size = base_size(&after.record, max.as_ref())?;
                    after.sealed_max = max;
                    self.seen.remember(after.clone());
                    after
                }
                Written::Moved(item) => self.retry_from(id, item, attempt).await?,
                Written::Other | Written::Conflicted => self.retry_from(id, None, attempt).await?,
            };
        }
        Err(self.conflict(id, op.operation))
    }
}
