import AgentQueue
import Testing

@Suite struct SQLScriptSplitterTests {
    @Test func splitsOnTopLevelSemicolonsOnly() {
        let script = """
            -- a comment; with a semicolon
            create table t (a text default 'x;y');
            /* block; comment */ insert into t values ('it''s; fine');
            create function f() returns int language plpgsql as $$ begin return 1; end $$;
            create function g() returns text language sql as $body$ select 'a;b' $body$;
            select $1::int; select "odd;name" from t
            """
        let parts = SQLScriptSplitter.split(script)
        #expect(parts.count == 6)
        #expect(parts[0].hasSuffix("default 'x;y')"))
        #expect(parts[2].contains("begin return 1; end"))
        #expect(parts[3].contains("'a;b'"))
        #expect(parts[4] == "select $1::int")
        #expect(parts[5] == "select \"odd;name\" from t")
    }

    @Test func dropsCommentOnlyAndEmptyStatements() {
        #expect(SQLScriptSplitter.split(";;  -- nothing\n;").isEmpty)
    }

    @Test func splitsTheProjectMigrations() throws {
        let migrations = try Migrator(directory: ProjectLayout.locate().sqlDirectory).migrations()
        #expect(migrations.map(\.version) == migrations.map(\.version).sorted())
        for m in migrations {
            let statements = SQLScriptSplitter.split(m.sql)
            #expect(statements.count >= 3)  // each file does real work and records its version
            #expect(statements.allSatisfy { !$0.hasPrefix("$$") })
        }
    }
}
