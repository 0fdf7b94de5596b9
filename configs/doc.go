// Package configs holds trackline's configuration: the YAML schema, its loader and the
// checks that can be told from the file itself, and the embedded default (trackline.yaml,
// the demo that `make run` serves). The folder also keeps the operator files that are not
// Go: prompts, dashboards, units.
//
// Load reports every problem of a file at once, each with its path
// (customers[0].pool[3]: "+3185" is not E.164), so a config is fixed in one round. It knows
// nothing of the domain: the checks that need it (a customer as the admin API would accept
// it, prompt files that load) come in as Checkers (package provision), and seeding the
// store from the config is package provision's too.
package configs
