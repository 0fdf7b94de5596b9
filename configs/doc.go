// Package configs holds trackline's configuration: the YAML schema, its loader and
// validator, and the embedded default (trackline.yaml, the demo that `make run` serves).
// The folder also keeps the operator files that are not Go: prompts, dashboards, units.
//
// Load reports every problem of a file at once, each with its path
// (customers[0].pool[3]: "+3185" is not E.164), so a config is fixed in one round.
package configs
