package ocsp

// FastKept reports whether an answer is kept for target (tests only).
func (r *Responder) FastKept(target string) bool { return r.fast.get(target) != nil }

// AnswerStatus reads the certStatus of a response's first answer (tests
// only).
func AnswerStatus(resp []byte) int { return answerStatus(resp) }
