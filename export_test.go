package httpsse

// EncodeEvent runs fn with the encoder that Route.PublishEvent uses and returns the bytes of
// the event, or the error that would keep PublishEvent from sending it. It lets the external
// tests (hostile_test.go) check the raw encoder as well as what a Route writes.
func EncodeEvent(fn func(EventWriter) error) ([]byte, error) {
	b, err := AppendEvent(nil, fn)
	if err != nil {
		return nil, err
	}
	return b, nil
}
