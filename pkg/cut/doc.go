// Package cut shortens values that come from outside (a network config, the
// runtime's variables, a device plugin's config file) before a message quotes
// them, so that a hostile or careless value cannot make a message long or spread
// it over lines.
package cut
