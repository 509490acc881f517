//! The `"digest"` object of `budgets.json` and the periods it makes.

use std::collections::BTreeMap;

use ai_usage_core::Zone;
use chrono::{Datelike, Days, NaiveDate, NaiveTime, Timelike, Weekday};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{ChannelConfig, Language};

/// How often the digest is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestSchedule {
    /// Every day, about the day before.
    Daily,
    /// Every week on one weekday, about the seven days before.
    Weekly,
}

impl DigestSchedule {
    /// `daily` or `weekly`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestSchedule::Daily => "daily",
            DigestSchedule::Weekly => "weekly",
        }
    }

    /// How late a period's digest is still posted (seconds after it was
    /// due): half a period, so a restart the same morning (daily) or the
    /// same week (weekly) still posts it, but a digest configured on a
    /// Sunday does not post the week before's.
    pub fn max_lateness_secs(self) -> f64 {
        self.days() as f64 * 86_400.0 / 2.0
    }

    /// Days one period covers.
    pub fn days(self) -> u64 {
        match self {
            DigestSchedule::Daily => 1,
            DigestSchedule::Weekly => 7,
        }
    }
}

/// The digest's configuration is wrong; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// A field has a value that cannot be used (or a required one is absent).
    #[error("digest: field `{field}`: {reason}")]
    Invalid {
        /// The field at fault (`schedule`, `weekday`, `at`, `notify`,
        /// `language`, `top`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The object does not have the digest's shape (unknown field, wrong type).
    #[error("digest: {0}")]
    Json(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> DigestError {
    DigestError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The digest as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    schedule: Option<String>,
    weekday: Option<String>,
    at: Option<String>,
    notify: Option<Vec<String>>,
    #[serde(alias = "lang")]
    language: Option<String>,
    top: Option<u64>,
}

/// Most entries of each top list.
pub const MAX_TOP: usize = 20;

/// The `"digest"` object of `budgets.json`:
///
/// ```json
/// {"digest": {"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"], "language": "zh", "top": 5}}
/// ```
///
/// Fields: `schedule` (required: `daily` or `weekly`), `weekday` (weekly
/// only: `mon` … `sun`, default `mon`), `at` (local `HH:MM`, 24-hour, in
/// the monitor's zone; default `09:00`), `notify` (required: channel names
/// of the `"notify"` map), `language` or `lang` (`zh` or `en`; default each
/// channel's own), `top` (entries per top list, 1 to 20, default 5).
///
/// ```
/// use ai_usage_notify::{DigestConfig, DigestSchedule};
/// let c = DigestConfig::from_json(
///     &serde_json::json!({"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"]}),
///     ["ops"],
/// ).unwrap();
/// assert_eq!(c.schedule(), DigestSchedule::Weekly);
/// let e = DigestConfig::from_json(&serde_json::json!({"schedule": "weekly", "at": "9h", "notify": ["ops"]}), ["ops"]);
/// assert!(e.unwrap_err().to_string().contains("field `at`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestConfig {
    schedule: DigestSchedule,
    weekday: Weekday,
    at: NaiveTime,
    notify: Vec<String>,
    language: Option<Language>,
    top: usize,
}

impl DigestConfig {
    /// A digest posted to `notify` at 09:00 (weekly: on Mondays), top 5.
    pub fn new(
        schedule: DigestSchedule,
        notify: impl IntoIterator<Item = impl Into<String>>,
    ) -> DigestConfig {
        DigestConfig {
            schedule,
            weekday: Weekday::Mon,
            at: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            notify: notify.into_iter().map(Into::into).collect(),
            language: None,
            top: 5,
        }
    }

    /// Parses and checks the `"digest"` object; `channels` are the names
    /// the `"notify"` map defines.
    pub fn from_json<'a>(
        value: &serde_json::Value,
        channels: impl IntoIterator<Item = &'a str>,
    ) -> Result<DigestConfig, DigestError> {
        let raw = RawDigest::deserialize(value).map_err(|e| DigestError::Json(e.to_string()))?;
        let schedule = match raw.schedule.as_deref().map(str::trim) {
            None | Some("") => return Err(invalid("schedule", "is required (daily or weekly)")),
            Some("daily" | "day") => DigestSchedule::Daily,
            Some("weekly" | "week") => DigestSchedule::Weekly,
            Some(other) => {
                return Err(invalid(
                    "schedule",
                    format!("unknown schedule {other:?} (expected daily or weekly)"),
                ))
            }
        };
        let mut config = DigestConfig::new(schedule, Vec::<String>::new());
        if let Some(day) = raw.weekday {
            if schedule == DigestSchedule::Daily {
                return Err(invalid(
                    "weekday",
                    "only a weekly digest has a weekday (a daily one is posted every day)",
                ));
            }
            config.weekday = day.trim().parse::<Weekday>().map_err(|_| {
                invalid(
                    "weekday",
                    format!(
                        "unknown weekday {day:?} (expected mon, tue, wed, thu, fri, sat or sun)"
                    ),
                )
            })?;
        }
        if let Some(at) = raw.at {
            config.at = NaiveTime::parse_from_str(at.trim(), "%H:%M").map_err(|_| {
                invalid(
                    "at",
                    format!("{at:?} is not a local time HH:MM (24-hour, e.g. \"09:00\")"),
                )
            })?;
        }
        let known: Vec<&str> = channels.into_iter().collect();
        let notify = raw.notify.unwrap_or_default();
        if notify.is_empty() {
            return Err(invalid(
                "notify",
                "is required: the names of the channels (of the \"notify\" map) that get the digest",
            ));
        }
        for name in &notify {
            if !known.contains(&name.as_str()) {
                return Err(invalid(
                    "notify",
                    format!("channel `{name}` is not defined in the \"notify\" map"),
                ));
            }
        }
        let mut unique: Vec<String> = Vec::with_capacity(notify.len());
        for name in notify {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        config.notify = unique;
        if let Some(language) = raw.language {
            config.language = Some(match language.trim().to_ascii_lowercase().as_str() {
                "zh" | "zh-cn" | "cn" => Language::Zh,
                "en" => Language::En,
                _ => {
                    return Err(invalid(
                        "language",
                        format!("unknown language {language:?} (expected zh or en)"),
                    ))
                }
            });
        }
        if let Some(top) = raw.top {
            if top == 0 || top > MAX_TOP as u64 {
                return Err(invalid(
                    "top",
                    format!("{top} is not between 1 and {MAX_TOP}"),
                ));
            }
            config.top = top as usize;
        }
        Ok(config)
    }

    /// The digest of a budgets file ([`ai_usage_core::BudgetsConfig::digest`])
    /// whose channels are `channels`; `None` without one.
    pub fn from_budgets_config(
        digest: Option<&serde_json::Value>,
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> Result<Option<DigestConfig>, DigestError> {
        digest
            .map(|d| DigestConfig::from_json(d, channels.keys().map(String::as_str)))
            .transpose()
    }

    /// Posts on `weekday` (weekly digests).
    pub fn weekday(mut self, weekday: Weekday) -> DigestConfig {
        self.weekday = weekday;
        self
    }

    /// Posts at the local time `at`.
    pub fn at(mut self, at: NaiveTime) -> DigestConfig {
        self.at = at;
        self
    }

    /// Renders in `language` on every channel.
    pub fn language(mut self, language: Language) -> DigestConfig {
        self.language = Some(language);
        self
    }

    /// Entries per top list (clamped to 1..=20).
    pub fn top(mut self, top: usize) -> DigestConfig {
        self.top = top.clamp(1, MAX_TOP);
        self
    }

    /// Daily or weekly.
    pub fn schedule(&self) -> DigestSchedule {
        self.schedule
    }

    /// The channels that get it.
    pub fn notify(&self) -> &[String] {
        &self.notify
    }

    /// The language forced on every channel, if any.
    pub fn forced_language(&self) -> Option<Language> {
        self.language
    }

    /// Entries per top list.
    pub fn top_entries(&self) -> usize {
        self.top
    }

    /// The local time it is posted at.
    pub fn local_time(&self) -> NaiveTime {
        self.at
    }

    /// The weekday a weekly digest is posted on.
    pub fn posting_weekday(&self) -> Weekday {
        self.weekday
    }

    /// The latest period whose digest was due at or before `now` (epoch
    /// seconds), in `zone`: the day before the posting day (daily), or the
    /// seven days before it (weekly).
    pub fn latest_due(&self, now: f64, zone: &Zone) -> DigestPeriod {
        let local = zone.local(now);
        let today = local.date();
        // Compare at minute precision: `at` has no seconds.
        let before_time = local.time().with_second(0).unwrap_or(local.time()) < self.at;
        let posting = match self.schedule {
            DigestSchedule::Daily => {
                if before_time {
                    sub_days(today, 1)
                } else {
                    today
                }
            }
            DigestSchedule::Weekly => {
                let back = (7 + today.weekday().num_days_from_monday()
                    - self.weekday.num_days_from_monday())
                    % 7;
                let day = sub_days(today, back.into());
                if back == 0 && before_time {
                    sub_days(day, 7)
                } else {
                    day
                }
            }
        };
        self.period_posted_on(posting, zone)
    }

    /// The period posted on the local date `posting`.
    fn period_posted_on(&self, posting: NaiveDate, zone: &Zone) -> DigestPeriod {
        let days = self.schedule.days();
        let to = sub_days(posting, 1);
        let from = sub_days(posting, days);
        DigestPeriod {
            schedule: self.schedule,
            from,
            to,
            previous_from: sub_days(from, days),
            previous_to: sub_days(from, 1),
            due: zone.timestamp_of(posting.and_time(self.at)),
        }
    }

    /// The next period due after `now`.
    pub fn next_due(&self, now: f64, zone: &Zone) -> DigestPeriod {
        let latest = self.latest_due(now, zone);
        let posting = latest
            .to
            .checked_add_days(Days::new(1 + self.schedule.days()))
            .unwrap_or(latest.to);
        self.period_posted_on(posting, zone)
    }
}

fn sub_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days)).unwrap_or(date)
}

/// One period of a digest: the local days it covers, the ones before it
/// (compared with), and when it is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DigestPeriod {
    /// Daily or weekly.
    pub schedule: DigestSchedule,
    /// First local day covered.
    pub from: NaiveDate,
    /// Last local day covered.
    pub to: NaiveDate,
    /// First day of the period compared with.
    pub previous_from: NaiveDate,
    /// Last day of the period compared with.
    pub previous_to: NaiveDate,
    /// When it is due (epoch seconds): the posting day at the configured time.
    pub due: f64,
}

impl DigestPeriod {
    /// `2026-12-06` (daily) or `2026-11-30~2026-12-06` (weekly).
    pub fn label(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{}~{}", self.from, self.to)
        }
    }

    /// The idempotency key of this period's digest: the same on every host
    /// and after every restart.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(
            format!("digest\n{}\n{}", self.schedule.as_str(), self.label()).as_bytes(),
        );
        hex::encode(&digest[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        "Asia/Shanghai".parse().unwrap()
    }

    fn at(local: &str) -> f64 {
        let t = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
        zone().timestamp_of(t)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn weekly() -> DigestConfig {
        DigestConfig::from_json(
            &serde_json::json!({"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"]}),
            ["ops"],
        )
        .unwrap()
    }

    #[test]
    fn a_weekly_digest_covers_the_seven_days_before_its_monday() {
        // 2026-12-07 is a Monday.
        let p = weekly().latest_due(at("2026-12-07 09:00:30"), &zone());
        assert_eq!((p.from, p.to), (d("2026-11-30"), d("2026-12-06")));
        assert_eq!(
            (p.previous_from, p.previous_to),
            (d("2026-11-23"), d("2026-11-29"))
        );
        assert_eq!(p.due, at("2026-12-07 09:00:00"));
        assert_eq!(p.label(), "2026-11-30~2026-12-06");
        // A minute earlier the week before is the latest due.
        let before = weekly().latest_due(at("2026-12-07 08:59:59"), &zone());
        assert_eq!((before.from, before.to), (d("2026-11-23"), d("2026-11-29")));
        // Thursday: still Monday's digest; its id does not change.
        let thursday = weekly().latest_due(at("2026-12-10 18:00:00"), &zone());
        assert_eq!(thursday.id(), p.id());
        assert_ne!(before.id(), p.id());
        let next = weekly().next_due(at("2026-12-07 09:00:30"), &zone());
        assert_eq!(next.due, at("2026-12-14 09:00:00"));
    }

    #[test]
    fn a_daily_digest_covers_the_day_before() {
        let c = DigestConfig::new(DigestSchedule::Daily, ["ops"])
            .at(NaiveTime::from_hms_opt(8, 30, 0).unwrap());
        let p = c.latest_due(at("2026-12-07 08:30:00"), &zone());
        assert_eq!(
            (p.from, p.to, p.previous_from),
            (d("2026-12-06"), d("2026-12-06"), d("2026-12-05"))
        );
        assert_eq!(p.label(), "2026-12-06");
        let p = c.latest_due(at("2026-12-07 08:29:00"), &zone());
        assert_eq!(p.from, d("2026-12-05"));
        assert_eq!(
            c.next_due(at("2026-12-07 08:29:00"), &zone()).due,
            at("2026-12-07 08:30:00")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = |v: serde_json::Value| {
            DigestConfig::from_json(&v, ["ops"])
                .unwrap_err()
                .to_string()
        };
        assert!(err(serde_json::json!({"notify": ["ops"]})).contains("field `schedule`"));
        assert!(
            err(serde_json::json!({"schedule": "hourly", "notify": ["ops"]}))
                .contains("field `schedule`")
        );
        assert!(err(
            serde_json::json!({"schedule": "weekly", "weekday": "lundi", "notify": ["ops"]})
        )
        .contains("field `weekday`"));
        assert!(
            err(serde_json::json!({"schedule": "daily", "weekday": "mon", "notify": ["ops"]}))
                .contains("field `weekday`")
        );
        assert!(
            err(serde_json::json!({"schedule": "daily", "at": "25:00", "notify": ["ops"]}))
                .contains("field `at`")
        );
        assert!(err(serde_json::json!({"schedule": "daily"})).contains("field `notify`"));
        assert!(
            err(serde_json::json!({"schedule": "daily", "notify": ["dev"]}))
                .contains("channel `dev` is not defined")
        );
        assert!(
            err(serde_json::json!({"schedule": "daily", "notify": ["ops"], "lang": "fr"}))
                .contains("field `language`")
        );
        assert!(
            err(serde_json::json!({"schedule": "daily", "notify": ["ops"], "top": 0}))
                .contains("field `top`")
        );
        assert!(
            err(serde_json::json!({"schedule": "daily", "notify": ["ops"], "hour": 9}))
                .contains("unknown field `hour`")
        );
        let c = DigestConfig::from_json(
            &serde_json::json!({"schedule": "daily", "notify": ["ops"], "lang": "en", "top": 3}),
            ["ops"],
        )
        .unwrap();
        assert_eq!(c.forced_language(), Some(Language::En));
        assert_eq!(c.top_entries(), 3);
    }
}
