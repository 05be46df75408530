import AgentQueue
import Foundation
import PostgresNIO
import Testing

/// Who may execute what, and the search_path of the functions that run as the owner.
extension HostileProducerTests {
    /// Every `agentq` function with the roles that may execute it besides the owner (`producer`,
    /// `worker`, `reader`, `public`; empty: the owner's only). A new function, or a changed grant,
    /// must be added here on purpose.
    static let executeAllowList: [String: String] = [
        "agentq.agents_check()": "",
        "agentq.catalog_changed()": "",
        "agentq.any_embedding_model()": "producer worker",
        "agentq.approve_tool_call(bigint,text,boolean,text)": "producer",
        "agentq.begin_step(text,bigint,integer,jsonb)": "worker",
        "agentq.cancel(bigint)": "producer worker",
        "agentq.cancel_thread_jobs(uuid)": "producer",
        "agentq.cancel_user_jobs(text)": "producer",
        "agentq.check_limits(integer,integer,jsonb)": "producer worker",
        "agentq.check_options(jsonb)": "producer worker",
        "agentq.claim(text,text[],integer,interval)": "worker",
        "agentq.context_messages(uuid,text,jsonb,vector)": "producer worker",
        "agentq.context_search(uuid,text,vector,text,jsonb,integer,uuid[])": "producer worker",
        "agentq.create_thread(text,text,text,jsonb)": "producer",
        "agentq.current_user_id()": "producer worker",
        "agentq.delete_embeddings(text,uuid,text)": "",
        "agentq.delete_thread(uuid)": "producer",
        "agentq.deregister_worker(text)": "worker",
        "agentq.embed_inputs(bigint[])": "worker",
        "agentq.embeddable(agentq.messages)": "producer worker",
        "agentq.emit(jsonb)": "producer worker",
        "agentq.emit_all(jsonb[])": "producer worker",
        "agentq.end_streams(bigint[],text[],text[])": "producer worker",
        "agentq.enqueue_embed_jobs(uuid[],text,integer,boolean)": "worker",
        "agentq.ensure_vector_index(integer)": "worker",
        "agentq.events_channel()": "producer reader worker",
        "agentq.finish_abort_streams(agentq.finish_item[],bigint[])": "worker",
        "agentq.finish_apply_outcomes(text,agentq.finish_item[])": "worker",
        "agentq.finish_items(jsonb)": "worker",
        "agentq.finish_job_events(bigint[])": "worker",
        "agentq.finish_jobs(text,jsonb)": "worker",
        "agentq.finish_last_deltas(agentq.finish_item[],bigint[])": "worker",
        "agentq.finish_save_llm_calls(agentq.finish_item[],bigint[])": "worker",
        "agentq.finish_save_messages(agentq.finish_item[],bigint[],uuid[])": "worker",
        "agentq.finish_save_usage(agentq.finish_item[])": "worker",
        "agentq.finish_status(text,boolean,integer,integer)": "producer worker",
        "agentq.finish_streamed_replies(agentq.finish_item[],bigint[])": "worker",
        "agentq.generate(uuid,text,text,uuid,jsonb)": "producer",
        "agentq.generate_object(uuid,text,jsonb,text,jsonb)": "producer",
        "agentq.has_listeners(text)": "producer worker",
        "agentq.heartbeat(text,bigint[],integer[],interval)": "worker",
        "agentq.insert_message(uuid,text,text,text,text,boolean,bigint)": "producer worker",
        "agentq.is_timestamptz(text)": "producer worker",
        "agentq.job_contexts(bigint[],integer)": "producer worker",
        "agentq.job_result(bigint)": "producer worker",
        "agentq.jobs_before_insert()": "",
        "agentq.jobs_before_update()": "",
        "agentq.jobs_delete_tool_calls()": "",
        "agentq.jobs_embed_prompt()": "",
        "agentq.limited_session()": "producer worker",
        "agentq.list_embeddings(text,uuid,uuid,integer)": "producer worker",
        "agentq.list_messages(uuid,integer,integer,text[],boolean)": "producer worker",
        "agentq.list_threads(text,integer,timestamp with time zone)": "producer worker",
        "agentq.listen(uuid)": "producer reader worker",
        "agentq.messages_embed_on_insert()": "",
        "agentq.messages_embed_on_update()": "",
        "agentq.messages_tsv()": "",
        "agentq.messages_user()": "",
        "agentq.open_streams(text,jsonb)": "worker",
        "agentq.open_tool_calls(bigint[])": "producer worker",
        "agentq.option_bool(jsonb,boolean)": "producer worker",
        "agentq.option_int(jsonb,integer)": "producer worker",
        "agentq.parked_job(bigint)": "producer worker",
        "agentq.pause_queue(text,text)": "",
        "agentq.prompt_embedding(uuid,text)": "worker",
        "agentq.prune(integer)": "worker",
        "agentq.purge(timestamp with time zone,boolean)": "",
        "agentq.raise_bad_option(text,text,jsonb)": "producer worker",
        "agentq.record_tool_results(bigint,jsonb)": "producer worker",
        "agentq.reembed(text,uuid,text)": "",
        "agentq.register_worker(text,text,integer,text[],integer,interval)": "worker",
        "agentq.reindex_text_search()": "",
        "agentq.requeue_failed(bigint)": "",
        "agentq.requeue_failed_jobs(text,text,text,timestamp with time zone,text)": "",
        "agentq.requeue_jobs(bigint[])": "",
        "agentq.resume_if_answered(bigint)": "producer worker",
        "agentq.resume_queue(text)": "",
        "agentq.run_sql_tool(bigint,text)": "worker",
        "agentq.save_embeddings(jsonb)": "worker",
        "agentq.save_job_embeddings(text,bigint,integer,jsonb)": "worker",
        "agentq.save_message(uuid,text,text,text,text,boolean)": "producer",
        "agentq.search_messages(text,uuid,text,integer,vector,text)": "producer worker",
        "agentq.set_search_hidden(uuid,boolean)": "producer",
        "agentq.setting(text)": "producer worker",
        "agentq.submit_tool_outputs(bigint,jsonb)": "producer",
        "agentq.supersede_parked(uuid)": "producer worker",
        "agentq.take_back_expired(integer,interval)": "worker",
        "agentq.text_search_config()": "producer worker",
        "agentq.thread_channel(uuid)": "producer worker",
        "agentq.threads_channel()": "producer worker",
        "agentq.threads_check_limits()": "",
        "agentq.tool_calls_before_update()": "",
        "agentq.tools_check()": "",
        "agentq.touch_threads(uuid[])": "producer worker",
        "agentq.unblock_next(uuid[])": "producer worker",
        "agentq.unlisten(uuid)": "producer reader worker",
        "agentq.update_thread(uuid,text,text,text,jsonb)": "producer",
        "agentq.vector_index_name(integer)": "producer worker",
        "agentq.vector_type(integer)": "producer worker",
        "agentq.wake_workers(text[])": "producer worker",
        "agentq.write_deltas(text,jsonb)": "worker"
    ]

    @Test func everyFunctionsExecuteGranteesAreOnTheAllowList() async throws {
        try await TestDatabase.with("hostile_grants") { owner, _ in
            let rows = try await owner.rows(
                """
                SELECT p.oid::regprocedure::text,
                       coalesce(string_agg(CASE a.grantee WHEN 0 THEN 'public' ELSE replace(a.grantee::regrole::text, 'agentq_', '') END,
                                           ' ' ORDER BY CASE a.grantee WHEN 0 THEN 'public' ELSE a.grantee::regrole::text END), '')
                  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  LEFT JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                         ON a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
                 WHERE n.nspname = 'agentq' GROUP BY p.oid ORDER BY 1
                """, as: (String, String).self)
            let actual = Dictionary(uniqueKeysWithValues: rows.map { ($0.0, $0.1) })
            for (function, grantees) in actual.sorted(by: { $0.key < $1.key }) {
                #expect(Self.executeAllowList[function] == grantees, "\(function): executable by \"\(grantees)\"")
            }
            for function in Set(Self.executeAllowList.keys).subtracting(actual.keys).sorted() {
                Issue.record("\(function) is on the allow-list but does not exist")
            }
        }
    }

    /// Every security definer function pins its search_path, with pg_catalog first and no schema a
    /// user may create objects in (an overload planted there would run as the owner).
    @Test func everySecurityDefinerFunctionPinsItsSearchPath() async throws {
        try await TestDatabase.with("hostile_definer") { owner, _ in
            let rows = try await owner.rows(
                """
                SELECT p.oid::regprocedure::text,
                       coalesce((SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%'), '')
                  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'agentq' AND p.prosecdef ORDER BY 1
                """, as: (String, String).self)
            #expect(rows.count >= 4)
            for (function, path) in rows {
                let schemas = path.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                #expect(schemas.first == "pg_catalog", "\(function): search_path \"\(path)\"")
                #expect(Set(schemas).isSubset(of: ["pg_catalog", "agentq", "pg_temp"]), "\(function): search_path \"\(path)\"")
                if let temp = schemas.firstIndex(of: "pg_temp") { #expect(temp == schemas.count - 1, "\(function): pg_temp not last") }
            }
        }
    }

    /// The producer may not create the owner's vector indexes (one per call and dimension).
    @Test func aProducerCannotCreateVectorIndexes() async throws {
        try await Self.scene("hostile_index") { s in
            try await RolesTests.session(s.producer, user: "alice") { alice in
                for dims in [3001, 3002] {
                    await expectError(alice, PostgresQuery(unsafeSQL: "SELECT agentq.ensure_vector_index(\(dims))"), "42501")
                }
            }
            #expect(try await s.owner.scalar("SELECT count(*)::int FROM pg_indexes WHERE indexname LIKE 'embeddings_hnsw_300%'") == 0)
            #expect(try await s.owner.scalar("SELECT agentq.ensure_vector_index(3)"))
            #expect(try await s.owner.scalar("SELECT to_regclass('agentq.embeddings_hnsw_3') IS NOT NULL"))
        }
    }
}
