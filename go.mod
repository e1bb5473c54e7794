module github.com/reiver/go-httpsse

go 1.25
