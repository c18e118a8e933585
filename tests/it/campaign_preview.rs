//! Schedules and previews: the right instants in the zones that make time hard.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use picket::campaign::preview::{Participant, preview_for};
use picket::campaign::{Campaign, Participation, load_file, parse_str, preview};
use picket::domain::NetworkKind;
use picket::scheduler::planner;
use picket::store::{
    Account, AccountId, AccountStatus, ParticipantId, Pledge, PledgeId, PledgeStatus,
};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

/// A campaign on `days` read in `timezone`, with the given `[[posts]]` (name, when, extra).
fn campaign(timezone: &str, days: &[&str], posts: &[(&str, &str, &str)]) -> Campaign {
    let days: Vec<String> = days.iter().map(|d| format!("\"{d}\"")).collect();
    let mut src = format!(
        "id = \"t\"\ntitle = \"T\"\nhashtag = \"T\"\n\n[strike]\ntimezone = \"{timezone}\"\n\
         days = [{}]\nmin_interval = \"15m\"\n",
        days.join(", ")
    );
    for (name, when, extra) in posts {
        src.push_str(&format!(
            "\n[[posts]]\nname = \"{name}\"\nwhen = \"{when}\"\ntemplate = \"t\"\n{extra}\n"
        ));
    }
    src.push_str(
        "\n[templates]\nt = [\"A #{{ hashtag }} {{ date }} {{ time }}\", \"B #{{ hashtag }} {{ weekday }}\", \"C {{ day }}/{{ days_total }}\"]\n",
    );
    parse_str(&src, Path::new("inline.toml")).unwrap_or_else(|p| panic!("{p:?}"))
}

fn everyone_in(zone: &str) -> Participation {
    Participation {
        tz: tz(zone).into(),
        days: None,
        every: None,
    }
}

fn starts(c: &Campaign, p: &Participation) -> Vec<DateTime<Utc>> {
    c.slots(p).iter().map(|s| s.at).collect()
}

#[test]
fn the_same_day_starts_25_hours_earlier_in_kiritimati_than_in_pago_pago() {
    // Arrange
    let c = campaign("participant", &["2027-07-04"], &[("notice", "start", "")]);

    // Act
    let kiritimati = starts(&c, &everyone_in("Pacific/Kiritimati"));
    let pago_pago = starts(&c, &everyone_in("Pacific/Pago_Pago"));

    // Assert
    assert_eq!(kiritimati, [utc("2027-07-03T10:00:00Z")]);
    assert_eq!(pago_pago, [utc("2027-07-04T11:00:00Z")]);
    assert_eq!(pago_pago[0] - kiritimati[0], Duration::hours(25));
}

#[test]
fn a_strike_day_with_spring_forward_has_23_hourly_slots() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-03-14"],
        &[("hourly", "every 1h", "")],
    );
    let p = everyone_in("America/New_York");

    // Act
    let slots = c.slots(&p);

    // Assert
    assert_eq!(slots.len(), 23);
    assert_eq!(
        c.strike_span(&p).map(|(s, e)| e - s),
        Some(Duration::hours(23))
    );
    assert_eq!(slots[0].at, utc("2027-03-14T05:00:00Z"));
    assert_eq!(slots[22].at, utc("2027-03-15T03:00:00Z"));
}

#[test]
fn a_strike_day_with_fall_back_has_25_hourly_slots() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-11-07"],
        &[("hourly", "every 1h", "")],
    );

    // Act
    let slots = c.slots(&everyone_in("America/New_York"));

    // Assert
    assert_eq!(slots.len(), 25);
    assert_eq!(slots[0].at, utc("2027-11-07T04:00:00Z"));
}

#[test]
fn daily_02_30_on_a_spring_forward_day_lands_at_03_30_daylight_time() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-03-14"],
        &[("daily", "daily 02:30", "")],
    );

    // Act
    let at = starts(&c, &everyone_in("America/New_York"));

    // Assert: 02:30 read with EST (-5) is 07:30Z, which is 03:30 EDT.
    assert_eq!(at, [utc("2027-03-14T07:30:00Z")]);
}

#[test]
fn daily_01_30_on_a_fall_back_day_is_the_first_occurrence() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-11-07"],
        &[("daily", "daily 01:30", "")],
    );

    // Act
    let at = starts(&c, &everyone_in("America/New_York"));

    // Assert: 01:30 EDT (-4), not 01:30 EST.
    assert_eq!(at, [utc("2027-11-07T05:30:00Z")]);
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_after_the_gap_in_santiago() {
    // Arrange: Chile springs forward at 24:00 on the first Saturday of September.
    let c = campaign("participant", &["2027-09-05"], &[("notice", "start", "")]);

    // Act
    let p = everyone_in("America/Santiago");
    let at = starts(&c, &p);

    // Assert: 01:00 -03.
    assert_eq!(at, [utc("2027-09-05T04:00:00Z")]);
    assert_eq!(
        c.strike_span(&p).map(|(s, e)| e - s),
        Some(Duration::hours(23))
    );
}

#[test]
fn a_day_whose_midnight_does_not_exist_starts_after_the_gap_in_havana() {
    // Arrange: Cuba springs forward at 00:00 on the second Sunday of March.
    let c = campaign("participant", &["2027-03-14"], &[("notice", "start", "")]);

    // Act
    let at = starts(&c, &everyone_in("America/Havana"));

    // Assert: 01:00 CDT (-4).
    assert_eq!(at, [utc("2027-03-14T05:00:00Z")]);
}

#[test]
fn half_hour_and_45_minute_zones_start_on_their_own_midnight() {
    // Arrange
    let c = campaign("participant", &["2027-07-04"], &[("notice", "start", "")]);

    // Act
    let kolkata = starts(&c, &everyone_in("Asia/Kolkata"));
    let chatham = starts(&c, &everyone_in("Pacific/Chatham"));

    // Assert: +05:30, and +12:45 (Chatham standard time in July).
    assert_eq!(kolkata, [utc("2027-07-03T18:30:00Z")]);
    assert_eq!(chatham, [utc("2027-07-03T11:15:00Z")]);
}

#[test]
fn a_strike_on_february_29_2028_is_one_day_long() {
    // Arrange
    let c = campaign(
        "participant",
        &["2028-02-29"],
        &[("notice", "start", ""), ("back", "end", "")],
    );

    // Act
    let at = starts(&c, &everyone_in("Europe/Berlin"));

    // Assert
    assert_eq!(
        at,
        [utc("2028-02-28T23:00:00Z"), utc("2028-02-29T23:00:00Z")]
    );
}

#[test]
fn a_strike_across_new_year_numbers_its_days_in_order() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-12-31", "2028-01-01"],
        &[("notice", "start", ""), ("back", "end", "")],
    );

    // Act
    let slots = c.slots(&everyone_in("Asia/Tokyo"));

    // Assert
    let summary: Vec<(&str, u32, DateTime<Utc>)> =
        slots.iter().map(|s| (&*s.post, s.day, s.at)).collect();
    assert_eq!(
        summary,
        [
            ("notice", 1, utc("2027-12-30T15:00:00Z")),
            ("notice", 2, utc("2027-12-31T15:00:00Z")),
            ("back", 2, utc("2028-01-01T15:00:00Z")),
        ]
    );
}

#[test]
fn one_zone_for_everyone_ignores_the_participants_zone() {
    // Arrange
    let c = campaign(
        "America/New_York",
        &["2027-07-04"],
        &[("notice", "start", "")],
    );

    // Act
    let at = starts(&c, &everyone_in("Asia/Tokyo"));

    // Assert
    assert_eq!(at, [utc("2027-07-04T04:00:00Z")]);
}

#[test]
fn the_invitation_goes_out_7_days_before_the_first_chosen_day() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04", "2027-07-05"],
        &[("invitation", "before 7d", "")],
    );
    let p = Participation {
        days: Some(vec![date("2027-07-05")]),
        ..everyone_in("Europe/Paris")
    };

    // Act
    let slots = c.slots(&p);

    // Assert
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].at, utc("2027-06-27T22:00:00Z"));
    assert_eq!(slots[0].day, 0);
    // By default the invitation may go out until the strike starts.
    assert_eq!(slots[0].window_end, utc("2027-07-04T22:00:00Z"));
}

#[test]
fn the_end_post_goes_out_once_after_the_last_chosen_day() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04", "2027-07-05"],
        &[("back", "end", "")],
    );
    let p = Participation {
        days: Some(vec![date("2027-07-04")]),
        ..everyone_in("UTC")
    };

    // Act
    let slots = c.slots(&p);

    // Assert
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].at, utc("2027-07-05T00:00:00Z"));
    assert_eq!(slots[0].window_end - slots[0].at, Duration::hours(24));
}

#[test]
fn an_optional_every_post_is_skipped_unless_the_participant_chooses_a_cadence() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04"],
        &[("hourly", "every 1h", "optional = true")],
    );
    let opted_out = everyone_in("UTC");
    let every_2h = Participation {
        every: Some(Duration::hours(2)),
        ..everyone_in("UTC")
    };

    // Act
    let none = c.slots(&opted_out);
    let some = c.slots(&every_2h);

    // Assert
    assert!(none.is_empty());
    assert_eq!(some.len(), 12);
    assert_eq!(some[0].window_end - some[0].at, Duration::hours(2));
}

#[test]
fn slot_keys_are_stable_across_re_planning() {
    // Arrange
    let c = campaign("participant", &["2027-07-04"], &[("notice", "start", "")]);
    let p = everyone_in("America/New_York");

    // Act
    let first = c.slots(&p);
    let again = c.slots(&p);

    // Assert
    assert_eq!(first, again);
    assert_eq!(&*first[0].key, "t/notice@2027-07-04T04:00:00Z");
}

#[test]
fn a_participation_on_a_day_outside_the_campaign_is_refused() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04", "2027-07-05"],
        &[("notice", "start", "")],
    );
    let p = Participation {
        days: Some(vec![date("2027-07-06")]),
        ..everyone_in("UTC")
    };

    // Act
    let result = c.check_participation(&p);

    // Assert
    let message = result.unwrap_err().to_string();
    assert!(message.contains("2027-07-06 is not a day"), "{message}");
    assert!(message.contains("2027-07-04, 2027-07-05"), "{message}");
}

#[test]
fn a_participation_below_min_days_is_refused() {
    // Arrange
    let c = load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/campaigns/good/windows.toml"),
    )
    .unwrap();
    let p = Participation {
        days: Some(vec![date("2027-12-31")]),
        ..everyone_in("UTC")
    };

    // Act
    let result = c.check_participation(&p);

    // Assert
    assert!(result.unwrap_err().to_string().contains("at least 2"));
}

#[test]
fn a_cadence_finer_than_min_interval_is_refused() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04"],
        &[("hourly", "every 1h", "")],
    );
    let p = Participation {
        every: Some(Duration::minutes(5)),
        ..everyone_in("UTC")
    };

    // Act
    let result = c.check_participation(&p);

    // Assert
    assert!(
        result
            .unwrap_err()
            .to_string()
            .contains("choose 15m or more")
    );
}

#[test]
fn absolute_windows_are_the_same_instants_in_every_zone() {
    // Arrange
    let c = load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/campaigns/good/windows.toml"),
    )
    .unwrap();

    // Act
    let tokyo = starts(&c, &everyone_in("Asia/Tokyo"));
    let lima = starts(&c, &everyone_in("America/Lima"));

    // Assert
    assert_eq!(tokyo, lima);
    assert_eq!(
        tokyo,
        [
            utc("2027-12-31T22:00:00Z"),
            utc("2028-02-28T23:00:00Z"),
            utc("2028-02-29T05:00:00Z"),
        ]
    );
}

#[test]
fn the_preview_renders_local_times_per_network_and_rotates_variants() {
    // Arrange
    let c = campaign(
        "participant",
        &["2027-07-04"],
        &[("hourly", "every 1h", "")],
    );
    let p = everyone_in("Asia/Kolkata");

    // Act
    let pv = preview(&c, &p, &[NetworkKind::Mastodon, NetworkKind::Bluesky]);

    // Assert
    assert_eq!(pv.posts.len(), 24);
    let first = &pv.posts[0];
    assert_eq!(first.at, utc("2027-07-03T18:30:00Z"));
    assert_eq!(first.local, "2027-07-04T00:00:00+05:30");
    assert_eq!(first.texts.len(), 2);
    assert_eq!(first.texts[0].text, "A #T 2027-07-04 00:00");
    assert!(
        first
            .texts
            .iter()
            .all(|t| t.measure.fits() && t.error.is_none())
    );
    assert!(pv.posts.windows(2).all(|w| w[0].variant != w[1].variant));
    assert_eq!(pv.posts[1].texts[0].text, "B #T Sunday");
}

#[test]
fn the_bundled_campaign_previews_every_post_within_bluesky_limits() {
    // Arrange
    let c = load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/social-media-strike.toml"),
    )
    .unwrap();
    let p = Participation {
        every: Some(Duration::hours(1)),
        ..everyone_in("Pacific/Chatham")
    };

    // Act
    let pv = preview(&c, &p, &[NetworkKind::Bluesky]);

    // Assert: invitation + 2 notices + 48 hourly + back.
    assert_eq!(pv.posts.len(), 1 + 2 + 48 + 1);
    assert!(
        pv.posts
            .iter()
            .flat_map(|p| &p.texts)
            .all(|t| t.measure.fits())
    );
    let json = serde_json::to_value(&pv).unwrap();
    assert_eq!(json["posts"][0]["post"], "invitation");
    let text = pv.to_text();
    assert!(
        text.contains("Social Media Strike (social-media-strike): 52 posts in Pacific/Chatham")
    );
}

/// An account of participant 1, connected at the epoch.
fn account(id: i64, network: NetworkKind, handle: &str, status: AccountStatus) -> Account {
    Account {
        id: AccountId(id),
        participant_id: ParticipantId(1),
        network,
        handle: handle.parse().unwrap(),
        server: None,
        credentials: Default::default(),
        trusted: false,
        route: picket::store::AccountRoute::Api,
        status,
        status_reason: None,
        created_at: DateTime::UNIX_EPOCH,
    }
}

#[test]
fn the_join_preview_shows_each_account_the_variant_the_planner_plans_for_it() {
    // Arrange: hourly notices from three variants, two accounts whose ids start their
    // rotations at different variants, one account removed.
    let c = campaign(
        "participant",
        &["2027-07-04"],
        &[("hourly", "every 1h", "")],
    );
    let p = everyone_in("Europe/Berlin");
    let accounts = [
        account(
            4,
            NetworkKind::Mastodon,
            "@ada@social.example",
            AccountStatus::Active,
        ),
        account(
            5,
            NetworkKind::Bluesky,
            "ada.bsky.social",
            AccountStatus::ReconnectNeeded,
        ),
        account(6, NetworkKind::Nostr, "npub1ada", AccountStatus::Removed),
    ];
    let pledge = Pledge {
        id: PledgeId(1),
        participant_id: ParticipantId(1),
        campaign_id: c.id.clone(),
        tz: "Europe/Berlin".parse().unwrap(),
        days: None,
        every_secs: None,
        status: PledgeStatus::Active,
        account_ids: vec![AccountId(4), AccountId(5)],
        tap_account_ids: vec![],
        created_at: DateTime::UNIX_EPOCH,
        withdrawn_at: None,
        plan_error: None,
    };
    let who = Participant {
        site: "https://picket.example",
        name: "Ada",
        invite_code: "abc",
        accounts: &accounts,
    };

    // Act
    let pv = preview_for(&c, &p, &who, &|a, text| {
        picket::compose::measure(a.network, text)
    });
    let plan = planner::plan_pledge(
        &c,
        &pledge,
        &c.slots(&p),
        Duration::zero(),
        utc("2027-01-01T00:00:00Z"),
    );

    // Assert: the same variant for every (account, slot), and only the two connected
    // accounts post.
    let planned: BTreeMap<(i64, String), usize> = plan
        .rows
        .iter()
        .map(|r| ((r.account_id.0, r.slot_key.to_string()), r.variant as usize))
        .collect();
    let previewed: BTreeMap<(i64, String), usize> = pv
        .posts
        .iter()
        .flat_map(|post| {
            post.texts
                .iter()
                .map(move |t| ((t.account.unwrap().0, post.key.clone()), t.variant))
        })
        .collect();
    assert_eq!(planned.len(), 2 * 24);
    assert_eq!(previewed, planned);
    assert_eq!(pv.networks, [NetworkKind::Mastodon, NetworkKind::Bluesky]);
}

#[test]
fn tap_to_post_accounts_are_planned_at_the_slots_own_minute_without_jitter() {
    // Arrange: hourly notices, an API account and a tap-to-post one, a 30-minute spread.
    let c = campaign(
        "participant",
        &["2027-07-04"],
        &[("hourly", "every 1h", "")],
    );
    let p = everyone_in("Pacific/Auckland");
    let pledge = Pledge {
        id: PledgeId(1),
        participant_id: ParticipantId(1),
        campaign_id: c.id.clone(),
        tz: "Pacific/Auckland".parse().unwrap(),
        days: None,
        every_secs: None,
        status: PledgeStatus::Active,
        account_ids: vec![AccountId(4), AccountId(5)],
        tap_account_ids: vec![AccountId(5)],
        created_at: DateTime::UNIX_EPOCH,
        withdrawn_at: None,
        plan_error: None,
    };

    // Act
    let plan = planner::plan_pledge(
        &c,
        &pledge,
        &c.slots(&p),
        Duration::minutes(30),
        utc("2027-01-01T00:00:00Z"),
    );

    // Assert: the reminder is due at the slot's minute; the API account's posts spread.
    let tap: Vec<_> = plan.rows.iter().filter(|r| r.account_id.0 == 5).collect();
    assert_eq!(tap.len(), 24);
    assert!(tap.iter().all(|r| r.run_at == r.slot_at), "{tap:?}");
    assert!(
        plan.rows
            .iter()
            .any(|r| r.account_id.0 == 4 && r.run_at != r.slot_at),
        "the API account keeps its jitter"
    );
}
