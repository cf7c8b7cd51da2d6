//! The cluster engine against a real `redis-server`: the publish script's numbering (epochs,
//! gap-free sequences, streams, feed, snapshots), concurrent publishers, a restart that loses
//! everything, and a node's hub fed from the feed and resumed from the streams.

mod redis_server;

use std::{collections::HashMap, sync::Arc, time::Duration};

use loopwatch::model::{
    protocol::{LogLines, ServerMessage},
    Cursor, Topic,
};
use loopwatch::server::{
    archive::Archival,
    engine::{self, Engine, Epoch},
    hub::{Hub, Replay},
    index::Index,
    Shutdown,
};
use redis::AsyncCommands;
use redis_server::RedisServer;

const WAIT: Duration = Duration::from_secs(10);

fn lines(project: &str, text: &str) -> ServerMessage {
    ServerMessage::LogAppend {
        project: project.into(),
        timestamp: "t".into(),
        data: LogLines { lines: text.into() },
    }
}

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test]
async fn the_script_numbers_each_topic_without_gaps_and_keeps_stream_feed_and_snapshot() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let engine = Engine::connect(&server.url()).await.expect("engine");
    let log = Topic::Log("p".into());
    let mut cursors = Vec::new();
    for i in 0..5 {
        let message = lines("p", &format!("{i}\n"));
        let cursor = engine
            .publish(&log, &message, Archival::Active, Epoch::Continue, None)
            .await
            .expect("publish");
        cursors.push(cursor);
    }
    let epoch = cursors[0].epoch;
    assert!(epoch > 1_600_000_000_000, "a time-based epoch: {epoch}");
    assert_eq!(
        cursors,
        (1..=5).map(|seq| Cursor { epoch, seq }).collect::<Vec<_>>()
    );
    let mut connection = raw(&server).await;
    let ids: redis::streams::StreamRangeReply = connection
        .xrange_all(engine::topic_stream(&log))
        .await
        .expect("xrange");
    let ids: Vec<&str> = ids.ids.iter().map(|entry| entry.id.as_str()).collect();
    assert_eq!(ids, ["1-0", "2-0", "3-0", "4-0", "5-0"]);
    let feed: redis::streams::StreamRangeReply =
        connection.xrange_all(engine::FEED).await.expect("feed");
    let seqs: Vec<u64> = feed.ids.iter().filter_map(|e| e.get("s")).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    // A new epoch (a rotated log): later, and the stream starts again at 1.
    let rotated = ServerMessage::LogRotated {
        project: "p".into(),
        timestamp: "t".into(),
    };
    let cursor = engine
        .publish(&log, &rotated, Archival::Active, Epoch::New, None)
        .await
        .expect("publish");
    assert!(cursor.epoch > epoch);
    assert_eq!(cursor.seq, 1);
    let held: u64 = connection
        .xlen(engine::topic_stream(&log))
        .await
        .expect("xlen");
    assert_eq!(
        held, 1,
        "the old epoch's events are gone from the topic's stream"
    );

    // The project's snapshot carries its card at the cursor of the event that changed it.
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(project.path().join(".ralph")).expect("mkdir");
    let index = Index::new(Hub::new(8));
    let id = index.add(project.path().to_path_buf()).expect("a project");
    let card = index.summaries().pop().expect("card");
    let added = ServerMessage::ProjectAdded {
        project: id.clone(),
        timestamp: "t".into(),
        data: card.clone(),
    };
    let at = engine
        .publish(
            &Topic::Projects,
            &added,
            Archival::Active,
            Epoch::Continue,
            Some(&card),
        )
        .await
        .expect("publish");
    let snapshot: HashMap<String, String> = connection
        .hgetall(format!("lw:snap:{id}"))
        .await
        .expect("snapshot");
    assert_eq!(snapshot.get("seq"), Some(&at.seq.to_string()));
    assert_eq!(snapshot.get("epoch"), Some(&at.epoch.to_string()));
    let stored: loopwatch::model::ProjectSummary =
        serde_json::from_str(&snapshot["card"]).expect("card json");
    assert_eq!(stored, card);
    let members: Vec<String> = connection.smembers(engine::PROJECTS).await.expect("set");
    assert_eq!(members, vec![id.clone()]);
    let removed = ServerMessage::ProjectRemoved {
        project: id.clone(),
        timestamp: "t".into(),
    };
    engine
        .publish(
            &Topic::Projects,
            &removed,
            Archival::Active,
            Epoch::Continue,
            None,
        )
        .await
        .expect("publish");
    let members: Vec<String> = connection.smembers(engine::PROJECTS).await.expect("set");
    assert!(members.is_empty());
}

#[tokio::test]
async fn concurrent_publishers_get_one_gap_free_order() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    const EACH: usize = 200;
    let mut tasks = Vec::new();
    for agent in 0..2 {
        let engine = Engine::connect(&server.url()).await.expect("engine");
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..EACH {
                let message = ServerMessage::ProjectRemoved {
                    project: format!("a{agent}-{i}"),
                    timestamp: "t".into(),
                };
                let cursor = engine
                    .publish(
                        &Topic::Projects,
                        &message,
                        Archival::Active,
                        Epoch::Continue,
                        None,
                    )
                    .await
                    .expect("publish");
                got.push(cursor);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let got = task.await.expect("publisher");
        // Each publisher sees its own events in increasing order.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        all.extend(got);
    }
    let epoch = all[0].epoch;
    assert!(all.iter().all(|c| c.epoch == epoch));
    let mut seqs: Vec<u64> = all.iter().map(|c| c.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=2 * EACH as u64).collect::<Vec<_>>());
    // The feed holds them in the same order as their numbers.
    let mut connection = raw(&server).await;
    let feed: redis::streams::StreamRangeReply =
        connection.xrange_all(engine::FEED).await.expect("feed");
    let order: Vec<u64> = feed.ids.iter().filter_map(|e| e.get("s")).collect();
    assert_eq!(order, (1..=2 * EACH as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_engine_restarted_empty_starts_a_later_epoch() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let engine = Engine::connect(&server.url()).await.expect("engine");
    let log = Topic::Log("p".into());
    let publish = |text: &'static str| {
        let engine = engine.clone();
        let log = log.clone();
        async move {
            engine
                .publish(
                    &log,
                    &lines("p", text),
                    Archival::Active,
                    Epoch::Continue,
                    None,
                )
                .await
        }
    };
    let before = publish("a\n").await.expect("publish");
    server.restart();
    // The connection manager reconnects by itself; the first call may see the broken link.
    let after = match publish("b\n").await {
        Ok(cursor) => cursor,
        Err(_) => publish("b\n").await.expect("publish after reconnecting"),
    };
    assert!(after.epoch > before.epoch, "{after:?} after {before:?}");
    assert_eq!(after.seq, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_carries_the_engines_cursors_and_resumes_old_cursors_from_the_stream() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let engine = Engine::connect(&server.url()).await.expect("engine");
    let log = Topic::Log("p".into());
    // Published before the node joins: only the history holds these.
    for i in 1..=20 {
        engine
            .publish(
                &log,
                &lines("p", &format!("{i}\n")),
                Archival::Active,
                Epoch::Continue,
                None,
            )
            .await
            .expect("publish");
    }
    let hub = Hub::new(64);
    let index = Arc::new(Index::new(hub.clone()));
    let cards = Arc::new(engine::cards::Cards::default());
    let from = engine::node::join(&engine, &hub, &index, &cards)
        .await
        .expect("join");
    let epoch = hub.cursor(&log).epoch;
    assert_eq!(hub.cursor(&log).seq, 20, "seeded from the engine");
    let shutdown = Shutdown::default();
    let mut receiver = hub.subscribe();
    let follower = tokio::spawn(engine::node::follow(
        engine.clone(),
        hub.clone(),
        index.clone(),
        cards,
        from,
        shutdown.clone(),
    ));
    for i in 21..=25 {
        engine
            .publish(
                &log,
                &lines("p", &format!("{i}\n")),
                Archival::Active,
                Epoch::Continue,
                None,
            )
            .await
            .expect("publish");
    }
    let mut live = Vec::new();
    while live.len() < 5 {
        let frame = tokio::time::timeout(WAIT, receiver.recv())
            .await
            .expect("a frame in time")
            .expect("frame");
        live.push(frame.cursor.seq);
    }
    assert_eq!(live, [21, 22, 23, 24, 25]);
    // Seq 3 is older than anything this hub saw: served from the topic's stream, gap-free,
    // then the ring.
    match hub.replay(&log, Cursor { epoch, seq: 3 }) {
        (Replay::Frames(frames), now) => {
            let seqs: Vec<u64> = frames.iter().map(|f| f.cursor.seq).collect();
            assert_eq!(seqs, (4..=25).collect::<Vec<_>>());
            assert_eq!(now, Cursor { epoch, seq: 25 });
            let text: String = frames
                .iter()
                .map(|f| match &*f.event {
                    ServerMessage::LogAppend { data, .. } => data.lines.clone(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(text, (4..=25).map(|i| format!("{i}\n")).collect::<String>());
        }
        (Replay::Resync, _) => panic!("the stream holds these events"),
    }
    // A cursor from an epoch the engine no longer holds is resync.
    assert!(matches!(
        hub.replay(
            &log,
            Cursor {
                epoch: epoch - 1,
                seq: 3
            }
        )
        .0,
        Replay::Resync
    ));
    shutdown.trigger();
    follower.await.expect("follower stops");
}
