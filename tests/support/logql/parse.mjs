// Parse LogQL queries with Grafana's own LogQL grammar (@grafana/lezer-logql).
//
// stdin:  JSON array of query strings.
// stdout: JSON array, one entry per query: the list of parse errors (empty when the query parses).
// Lezer recovers from syntax errors by inserting error nodes (type "⚠"); each one is reported with
// its position and the text around it, so a failing test says where the query is wrong.
import { parser } from "@grafana/lezer-logql";

function parseErrors(query) {
  const errors = [];
  const tree = parser.parse(query);
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        const context = query.slice(Math.max(0, node.from - 20), node.to + 20);
        errors.push(`syntax error at ${node.from}-${node.to} near ${JSON.stringify(context)}`);
      }
    },
  });
  return errors;
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
const queries = JSON.parse(input);
if (!Array.isArray(queries) || !queries.every((q) => typeof q === "string")) {
  process.stderr.write("parse.mjs expects a JSON array of strings on stdin\n");
  process.exit(2);
}
process.stdout.write(JSON.stringify(queries.map(parseErrors)) + "\n");
