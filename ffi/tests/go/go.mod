module cargohold.example/lifecycle

go 1.19
