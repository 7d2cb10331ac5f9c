module github.com/tokenrelay/tokenrelay/deprules

go 1.26.8
