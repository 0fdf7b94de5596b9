// Package textutil holds Clip, which shortens text a client sent before it is quoted in an
// error message, so that an answer or a log line stays short and valid UTF-8 whatever came
// in.
//
// It is a leaf: it imports only the standard library, so every package of trackline may
// import it.
package textutil
