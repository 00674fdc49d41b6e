//! The key lifecycle as pure decisions over key states and times (DESIGN.md, "Keys"):
//! `next` (published, not signing) -> `current` (signs) -> `retiring` (published, not
//! signing) -> `retired` (gone from JWKS, private part wiped); and, in an emergency, any
//! of the first three -> `withdrawn` (terminal: gone from JWKS and refused everywhere).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Lifecycle state of a signing key (DESIGN.md, "Keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published, not signing yet.
    Next,
    /// Signs new tokens.
    Current,
    /// Published, no longer signing, until its tokens have expired.
    Retiring,
    /// Gone from JWKS; private part wiped.
    Retired,
    /// Withdrawn in an emergency (its private part may have leaked): gone from JWKS,
    /// private part wiped, every token it signed refused. Terminal.
    Withdrawn,
}

impl KeyStatus {
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "retiring" => Some(Self::Retiring),
            "retired" => Some(Self::Retired),
            "withdrawn" => Some(Self::Withdrawn),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// The timing rules.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// JWKS `max-age`: a `next` key is published at least this long before it signs,
    /// so a consumer's cached JWKS always knows the signing key.
    pub publish_lead: Duration,
    /// Access-token lifetime plus clock skew: a `retiring` key stays published this long
    /// after it stopped signing, until every token it signed has expired.
    pub retire_after: Duration,
    /// Scheduled rotation interval.
    pub rotation_interval: Duration,
}

/// A key as the lifecycle sees it.
#[derive(Debug, Clone)]
pub struct KeyState {
    /// Key id.
    pub kid: String,
    /// State.
    pub status: KeyStatus,
    /// Creation (= publication) time.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    pub deactivated_at: Option<DateTime<Utc>>,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Why a rotation cannot happen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotYet {
    /// There is no `next` key yet; one must be published first.
    NoNextKey,
    /// The `next` key has not been published long enough; ready at this time.
    NextKeyTooYoung(DateTime<Utc>),
    /// A scheduled rotation is not due before this time.
    NotDue(DateTime<Utc>),
}

/// What a rotation does, if allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    /// The key that stops signing (none on a keyring that never signed).
    pub old_current: Option<String>,
    /// The `next` key that starts signing.
    pub new_current: String,
}

/// Decides a rotation. `scheduled` rotations also wait for the interval; manual ones do
/// not, but neither ever skips the pre-publication of the `next` key.
pub fn plan_rotation(
    keys: &[KeyState],
    now: DateTime<Utc>,
    timing: &Timing,
    scheduled: bool,
) -> Result<RotationPlan, NotYet> {
    let current = keys.iter().find(|k| k.status == KeyStatus::Current);
    if scheduled && let Some(activated) = current.and_then(|c| c.activated_at) {
        let due = activated + delta(timing.rotation_interval);
        if now < due {
            return Err(NotYet::NotDue(due));
        }
    }
    // The oldest `next` key is the one consumers have had longest.
    let next = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Next)
        .min_by_key(|k| k.created_at)
        .ok_or(NotYet::NoNextKey)?;
    let ready_at = next.created_at + delta(timing.publish_lead);
    if now < ready_at {
        return Err(NotYet::NextKeyTooYoung(ready_at));
    }
    Ok(RotationPlan {
        old_current: current.map(|c| c.kid.clone()),
        new_current: next.kid.clone(),
    })
}

/// The `retiring` keys whose tokens have all expired.
pub fn keys_to_retire(keys: &[KeyState], now: DateTime<Utc>, timing: &Timing) -> Vec<String> {
    keys.iter()
        .filter(|k| k.status == KeyStatus::Retiring)
        .filter(|k| {
            k.deactivated_at
                .is_none_or(|at| now >= at + delta(timing.retire_after))
        })
        .map(|k| k.kid.clone())
        .collect()
}

/// What an emergency withdrawal does (see [`plan_withdrawal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalPlan {
    /// The keys that become `withdrawn`, the asked-for one first.
    pub withdraw: Vec<String>,
    /// Whether a fresh key must start signing at once (no pre-publication).
    pub fresh_current: bool,
    /// Whether a fresh `next` key must be published.
    pub fresh_next: bool,
}

/// Why a key cannot be withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotWithdraw {
    /// No key has this kid.
    Unknown,
    /// The key is retired: already out of JWKS, and every token it signed has expired.
    Retired,
    /// The key is withdrawn already: nothing more to do.
    AlreadyWithdrawn,
}

/// Decides an emergency withdrawal of `kid`. The rules, one row per state of the key:
///
/// | state      | becomes `withdrawn`                      | fresh `current` | fresh `next` |
/// |------------|------------------------------------------|-----------------|--------------|
/// | `current`  | it, and every `next` key                 | yes, at once    | yes          |
/// | `next`     | it                                       | no              | yes          |
/// | `retiring` | it                                       | no              | no           |
/// | `retired`  | refused: [`CannotWithdraw::Retired`]     |                 |              |
/// | `withdrawn`| nothing: [`CannotWithdraw::AlreadyWithdrawn`] |            |              |
/// | unknown    | refused: [`CannotWithdraw::Unknown`]     |                 |              |
///
/// A `next` key lives in the same database under the same key-encryption key as the
/// `current` one: if the current key leaked, the next one must be assumed to have leaked
/// too, so it is withdrawn with it rather than promoted. The fresh `current` skips
/// pre-publication: verifiers meet an unknown `kid` and refetch JWKS.
pub fn plan_withdrawal(keys: &[KeyState], kid: &str) -> Result<WithdrawalPlan, CannotWithdraw> {
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(CannotWithdraw::Unknown)?;
    let only = |fresh_current, fresh_next| WithdrawalPlan {
        withdraw: vec![kid.to_owned()],
        fresh_current,
        fresh_next,
    };
    match key.status {
        KeyStatus::Current => {
            let mut withdraw = vec![kid.to_owned()];
            withdraw.extend(
                keys.iter()
                    .filter(|k| k.status == KeyStatus::Next)
                    .map(|k| k.kid.clone()),
            );
            Ok(WithdrawalPlan {
                withdraw,
                fresh_current: true,
                fresh_next: true,
            })
        }
        KeyStatus::Next => Ok(only(false, true)),
        KeyStatus::Retiring => Ok(only(false, false)),
        KeyStatus::Retired => Err(CannotWithdraw::Retired),
        KeyStatus::Withdrawn => Err(CannotWithdraw::AlreadyWithdrawn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60;

    fn timing() -> Timing {
        Timing {
            publish_lead: Duration::from_secs(5 * 60),
            retire_after: Duration::from_secs(16 * 60),
            rotation_interval: Duration::from_secs(24 * 3600),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn key(kid: &str, status: KeyStatus, created: i64) -> KeyState {
        KeyState {
            kid: kid.into(),
            status,
            created_at: at(created),
            activated_at: (status == KeyStatus::Current).then(|| at(created)),
            deactivated_at: (status == KeyStatus::Retiring).then(|| at(created)),
        }
    }

    #[test]
    fn a_next_key_never_signs_before_it_was_published_for_the_lead_time() {
        let keys = [
            key("cur", KeyStatus::Current, 0),
            key("nxt", KeyStatus::Next, 0),
        ];
        assert_eq!(
            plan_rotation(&keys, at(4 * MIN), &timing(), false),
            Err(NotYet::NextKeyTooYoung(at(5 * MIN)))
        );
        assert_eq!(
            plan_rotation(&keys, at(5 * MIN), &timing(), false),
            Ok(RotationPlan {
                old_current: Some("cur".into()),
                new_current: "nxt".into()
            })
        );
    }

    #[test]
    fn scheduled_rotation_waits_for_the_interval_manual_does_not() {
        let keys = [
            key("cur", KeyStatus::Current, 0),
            key("nxt", KeyStatus::Next, 0),
        ];
        assert_eq!(
            plan_rotation(&keys, at(3600), &timing(), true),
            Err(NotYet::NotDue(at(24 * 3600)))
        );
        assert!(plan_rotation(&keys, at(3600), &timing(), false).is_ok());
        assert!(plan_rotation(&keys, at(24 * 3600), &timing(), true).is_ok());
    }

    #[test]
    fn without_a_next_key_there_is_no_rotation() {
        let keys = [key("cur", KeyStatus::Current, 0)];
        assert_eq!(
            plan_rotation(&keys, at(99 * 3600), &timing(), false),
            Err(NotYet::NoNextKey)
        );
    }

    #[test]
    fn retiring_keys_stay_published_until_their_tokens_expired() {
        let keys = [
            key("old", KeyStatus::Retiring, 0),
            key("cur", KeyStatus::Current, 0),
        ];
        assert!(keys_to_retire(&keys, at(16 * MIN - 1), &timing()).is_empty());
        assert_eq!(keys_to_retire(&keys, at(16 * MIN), &timing()), ["old"]);
    }

    #[test]
    fn withdrawal_follows_its_table_row_by_row() {
        let keys = [
            key("old", KeyStatus::Retiring, 0),
            key("cur", KeyStatus::Current, 0),
            key("nxt", KeyStatus::Next, 0),
            key("ret", KeyStatus::Retired, 0),
            key("wdn", KeyStatus::Withdrawn, 0),
        ];
        let plan = |withdraw: &[&str], fresh_current, fresh_next| {
            Ok(WithdrawalPlan {
                withdraw: withdraw.iter().map(|k| (*k).to_owned()).collect(),
                fresh_current,
                fresh_next,
            })
        };
        let rows: [(&str, Result<WithdrawalPlan, CannotWithdraw>); 6] = [
            ("cur", plan(&["cur", "nxt"], true, true)),
            ("nxt", plan(&["nxt"], false, true)),
            ("old", plan(&["old"], false, false)),
            ("ret", Err(CannotWithdraw::Retired)),
            ("wdn", Err(CannotWithdraw::AlreadyWithdrawn)),
            ("nope", Err(CannotWithdraw::Unknown)),
        ];
        for (kid, expected) in rows {
            assert_eq!(plan_withdrawal(&keys, kid), expected, "withdrawing {kid}");
        }
    }

    #[test]
    fn withdrawing_current_without_a_next_key_still_makes_both_fresh() {
        let keys = [key("cur", KeyStatus::Current, 0)];
        assert_eq!(
            plan_withdrawal(&keys, "cur"),
            Ok(WithdrawalPlan {
                withdraw: vec!["cur".into()],
                fresh_current: true,
                fresh_next: true,
            })
        );
    }
}
