/// The synthetic corpus of `agentq bench search` and its query sets, as SQL run server-side.
extension SearchRun {
    /// The corpus, built server-side (labelled statements; the labels sum into the load figures).
    /// Topics: a unit centroid and a vocabulary of 30 made-up words each. Threads: users × threads per
    /// user, each about one topic, spread over the users by a power law (user 1 holds 10 % of them,
    /// the lightest 6). Messages: interleaved over the threads (ord/step
    /// turns, user then assistant), 80 % on their thread's topic, text mixing topic words (40 %, the
    /// first words of a vocabulary most often) with common words. Vectors: the topic centroid plus
    /// Gaussian noise (sigma 0.05 per dimension), normalised.
    func corpusStatements() -> [(String, String)] {
        let (n, t, k, d) = (messages, threads, topics, Self.dims)
        return [
            ("threads", "SELECT setseed(0.5)"),
            (
                "threads",
                """
                CREATE UNLOGGED TABLE bench_topics AS
                SELECT t, l2_normalize(array(SELECT random_normal() FROM generate_series(1, \(d)) i WHERE t >= 0)::vector) AS centroid,
                       array(SELECT s[1 + x.k % 24] || s[1 + (x.k / 24) % 24] || s[1 + (x.k / 576) % 24]
                               FROM (SELECT ((t * 30 + w) * 7919) % 13824 AS k FROM generate_series(0, 29) w) x) AS words
                  FROM generate_series(0, \(k - 1)) t,
                       (SELECT array['ka','lo','mi','ren','tus','vor','ba','si','del','fan','gor','hu','jet','nix','pra','quo',
                                     'rol','sta','tem','ul','vex','wim','zor','bri'] AS s) s
                """
            ),
            (
                "threads",
                """
                CREATE UNLOGGED TABLE bench_threads AS
                SELECT g AS n, gen_random_uuid() AS id,
                       'bench-user-' || (1 + floor(\(users) * ((g - 1)::float8 / \(t)) ^ 3))::int AS user_id,
                       floor(random() * \(k))::int AS topic
                  FROM generate_series(1, \(t)) g
                """
            ),
            (
                "threads",
                """
                INSERT INTO agentq.threads (id, user_id, title, last_ord, created_at, updated_at)
                SELECT id, user_id, 'bench thread ' || n,
                       CASE WHEN n - 1 < \(n) THEN ((\(n) - n) / \(t)) / 2 ELSE -1 END,
                       now() - interval '30 days', now()
                  FROM bench_threads
                """
            ),
            (
                "messages",
                """
                CREATE UNLOGGED TABLE bench_messages AS
                SELECT g, gen_random_uuid() AS id, th.id AS thread_id, th.user_id, (g / \(t))::int AS i,
                       CASE WHEN random() < 0.8 THEN th.topic ELSE floor(random() * \(k))::int END AS topic
                  FROM generate_series(0, \(n - 1)) g
                  JOIN bench_threads th ON th.n = g % \(t) + 1
                """
            ),
            (
                "messages",
                """
                INSERT INTO agentq.messages (id, thread_id, user_id, ord, step, role, content, text, status, embed, created_at, updated_at)
                SELECT m.id, m.thread_id, m.user_id, m.i / 2, m.i % 2, CASE WHEN m.i % 2 = 0 THEN 'user' ELSE 'assistant' END,
                       jsonb_build_array(jsonb_build_object('type', 'text', 'text', x.text)), x.text, 'success', false,
                       now() - make_interval(secs => \(n) - m.g), now() - make_interval(secs => \(n) - m.g)
                  FROM bench_messages m JOIN bench_topics tp ON tp.t = m.topic,
                  LATERAL (SELECT array_to_string(array(
                              SELECT CASE WHEN random() < 0.4 THEN tp.words[1 + floor(30 * random() ^ 2)::int]
                                          ELSE c.w[1 + floor(random() * array_length(c.w, 1))::int] END
                                FROM generate_series(1, 8 + (m.g % 23)) j), ' ') AS text
                             FROM (SELECT array['the','a','to','and','of','is','it','in','for','that','you','this','with','on','can',
                                   'how','what','please','thanks','need','help','make','work','time','use','get','know','think','want',
                                   'like','just','also','would','could','should','one','new','good','way','look','first','change',
                                   'issue','question','answer','example','problem','idea','try','see','data','set','run','result',
                                   'case','point','part','test','check','value'] AS w) c) x
                """
            ),
            (
                "embeddings",
                """
                INSERT INTO agentq.embeddings (message_id, model, dims, thread_id, user_id, embedding)
                SELECT m.id, '\(Self.model)', \(d), m.thread_id, m.user_id,
                       l2_normalize(tp.centroid + array(SELECT random_normal(0, 0.05) FROM generate_series(1, \(d)) i WHERE m.g >= 0)::vector)
                  FROM bench_messages m JOIN bench_topics tp ON tp.t = m.topic
                """
            )
        ]
    }

    /// The series' queries: threads drawn evenly (so users by their share of threads), each with two
    /// of its topic's ten most frequent words and a vector near the topic's centroid.
    func querySetSQL() -> String {
        """
        SELECT th.id, th.user_id,
               tp.words[1 + floor(random() * 10)::int] || ' ' || tp.words[1 + floor(random() * 10)::int],
               l2_normalize(tp.centroid + array(SELECT random_normal(0, 0.05) FROM generate_series(1, \(Self.dims)) i WHERE q > 0)::vector)::text
          FROM generate_series(1, \(max(queries, warmup))) q
          JOIN bench_threads th ON th.n = 1 + (q * 7919) % \(threads)
          JOIN bench_topics tp ON tp.t = th.topic
         ORDER BY q
        """
    }

    /// The recall queries: threads of the two heaviest users, vectors near their topics.
    func recallSetSQL() -> String {
        """
        WITH heavy AS (SELECT user_id FROM bench_threads GROUP BY user_id ORDER BY count(*) DESC, user_id LIMIT 2)
        SELECT th.id, th.user_id, '',
               l2_normalize(tp.centroid + array(SELECT random_normal(0, 0.05) FROM generate_series(1, \(Self.dims)) i WHERE q > 0)::vector)::text
          FROM generate_series(1, \(recallQueries)) q
          JOIN LATERAL (SELECT * FROM bench_threads t WHERE t.user_id IN (SELECT user_id FROM heavy) AND q > 0
                         ORDER BY random() LIMIT 1) th ON true
          JOIN bench_topics tp ON tp.t = th.topic
         ORDER BY q
        """
    }
}
